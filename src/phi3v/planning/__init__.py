"""Pre-flight plan of a training run: parameters, tokens per sample, peak memory per GPU and time, before the model
loads. `scripts/plan.py` prints it alone; `scripts/sft.py` and `scripts/dpo.py` print it first. See `docs/plan.md`."""

from .run import print_run_plan


__all__ = ["print_run_plan"]
