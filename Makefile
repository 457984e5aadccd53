# Everything runs inside .venv, created on first use: `make demo` and `make test` work on a fresh machine.
.PHONY: install demo demo-dpo test quality style clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

install: $(INSTALLED)

# torch first, pinned: on CPU machines `torch==2.13.0` is the CPU build; an unpinned torch pulls a multi-GB CUDA build.
$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

# The embedded default: tiny random Phi-3-V, synthetic catalogue, SFT on CPU, evaluation against the baselines.
demo: install
	test -d outputs/tiny-phi3v || $(PY) scripts/make_tiny_model.py --output outputs/tiny-phi3v
	test -d data/synthetic || $(PY) scripts/make_synthetic_catalogue.py --output data/synthetic
	$(PY) scripts/sft.py recipes/smoke.yaml
	$(PY) scripts/evaluate.py --dataset data/synthetic --model smoke=outputs/demo --output_dir outputs/demo-eval \
		--overwrite
	@echo "Tiny model: outputs/tiny-phi3v   catalogue: data/synthetic   SFT model: outputs/demo"
	@echo "Evaluation: outputs/demo-eval/report.md (metrics.json, predictions.jsonl, price_scatter_*.png)"

# Continues the demo: preference pairs (hard negatives), DPO on the SFT model, SFT and DPO in one report.
demo-dpo: demo
	$(PY) scripts/make_preferences.py --dataset data/synthetic --output outputs/demo-preferences --overwrite
	$(PY) scripts/dpo.py recipes/smoke-dpo.yaml
	$(PY) scripts/evaluate.py --dataset data/synthetic --model sft=outputs/demo dpo=outputs/demo-dpo \
		--output_dir outputs/demo-dpo-eval --overwrite
	@echo "DPO model: outputs/demo-dpo   SFT vs DPO report: outputs/demo-dpo-eval/report.md"

test: install
	$(VENV)/bin/pytest tests

quality: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

style: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs/tiny-phi3v outputs/demo outputs/demo-eval outputs/demo-preferences outputs/demo-dpo \
		outputs/demo-dpo-eval data/synthetic
