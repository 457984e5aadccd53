"""Reading any dataset: the splits a run names, from wherever they are (`loading`), the local image files its rows may
read (`local_files`), its layout and the converter of its rows (`formats`, `converters`) into the one conversation type
the encoder takes (`conversation`), the rules a row must follow (`row_checks`) and the check of every row a run reads
before a model loads (`validation`), and image columns read without decoding (`image_columns`)."""
