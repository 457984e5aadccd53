"""Reading any dataset: the splits a run names, from wherever they are (`loading`), the local image files its rows may
read (`local_files`), its layout and the converter of its rows (`formats`, `converters`) into the one conversation type
the encoder takes (`conversation`), and image columns read without decoding (`image_columns`)."""
