"""The model cards' benchmarks through lmms-eval: the native Phi-3-V as an lmms-eval model (`lmms_model`, registered
by `plugin`), the cards' published table (`published`), lmms-eval's tasks pointed at local copies of their data
(`local_tasks`) and the before/after-fine-tuning report (`forgetting`). Everything but `published` needs lmms-eval
(`make install-lmms`)."""
