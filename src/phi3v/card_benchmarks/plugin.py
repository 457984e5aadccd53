"""The `lmms_eval.models` entry point (setup.cfg): lmms-eval 0.7.3 loads every entry point of that group when it
builds its model registry and registers the manifest it returns, so `--model phi3v_native` resolves to
`phi3v.card_benchmarks.lmms_model.Phi3VNative`. The model's module (torch, transformers) is imported when a run asks for
it, not whenever lmms-eval starts.
"""

MODEL_NAME = "phi3v_native"  # apart from lmms-eval's own `phi3v`, which runs Microsoft's remote code


def manifest():
    """The `lmms_eval.models.registry_v2.ModelManifest` of `phi3v_native`."""
    # Imported here: importing lmms-eval's models package builds its registry, which loads this entry point, so an
    # import at the top would load this module while it is still being imported.
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_NAME, simple_class_path="phi3v.card_benchmarks.lmms_model.Phi3VNative")
