# Everything runs inside .venv, created on first use: `make demo` and `make test` work on a fresh machine.
.PHONY: install install-lmms browser demo demo-dpo demo-grpo demo-reproduce demo-forgetting app screenshots test \
	test-fast test-lmms quality style clean

PYTHON ?= python3
# One torch (OpenMP) thread per process unless the environment says otherwise: tiny models gain nothing from more, and
# OpenMP's default of one spinning thread per core thrashes as soon as anything else runs. On 2 cores shared with
# other work, 200 steps of the smoke SFT took 562 s with the default and 22 s with one thread.
export OMP_NUM_THREADS ?= 1
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
	$(PY) -c "$$BUILD_DEEPSPEED_CPU_OP"
	touch $(INSTALLED)

# DeepSpeed compiles its shared-memory communication op the first time a DeepSpeed run starts on CPU (about a minute
# of both cores; cached in ~/.cache/torch_extensions): built here, at install, not inside the first DeepSpeed test or
# run. Machines with an accelerator build nothing here; a build that fails (no C++ compiler) leaves the install to the
# rest, and only DeepSpeed runs on CPU need it.
define BUILD_DEEPSPEED_CPU_OP
from deepspeed.accelerator import get_accelerator
from deepspeed.comm.torch import build_shm_op
if get_accelerator().device_name() == "cpu":
    try:
        build_shm_op()  # what DeepSpeed's CPU backend calls at its first start
    except Exception as error:
        print(f"DeepSpeed's CPU communication op did not build ({error!r}); DeepSpeed runs on CPU need it.")
endef
export BUILD_DEEPSPEED_CPU_OP

# lmms-eval for the model cards' benchmarks (scripts/forgetting.py) in .venv-lmms, a virtual environment layered over
# .venv: a .pth file puts .venv's packages (the pinned stack) behind its own, which are only lmms-eval, installed
# without its dependencies (it pins wandb==0.25.0 against our 0.31.0), and the `lmms` extra, what it imports beyond
# the stack. .venv itself is left as it is. About a minute from PyPI (README, "Benchmarks").
VENV_LMMS := .venv-lmms
LMMS_INSTALLED := $(VENV_LMMS)/.installed

install-lmms: $(LMMS_INSTALLED)

$(LMMS_INSTALLED): $(INSTALLED)
	test -x $(VENV_LMMS)/bin/python || $(PY) -m venv --without-pip $(VENV_LMMS)
	$(PY) -c "import sysconfig; print(f'import site; site.addsitedir({sysconfig.get_path(\"purelib\")!r})')" \
		> "$$($(VENV_LMMS)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/phi3v_stack.pth"
	$(VENV_LMMS)/bin/python -m pip install --quiet --no-deps lmms-eval==0.7.3
	$(VENV_LMMS)/bin/python -m pip install --quiet -e ".[lmms]" 2>&1 \
		| grep -v -e "lmms-eval 0.7.3 requires" -e "resolver does not currently" || true
	$(VENV_LMMS)/bin/python -c "import lmms_eval.evaluator, filelock._api"
	touch $(LMMS_INSTALLED)

# The embedded default: tiny random Phi-3-V, synthetic catalogue, SFT on CPU, evaluation against the baselines.
demo: install
	test -d outputs/tiny-phi3v || $(PY) scripts/make_tiny_model.py --output outputs/tiny-phi3v
	test -d data/synthetic || $(PY) scripts/make_synthetic_catalogue.py --output data/synthetic
	$(PY) scripts/sft.py recipes/smoke/sft-full.yaml
	$(PY) scripts/evaluate.py --dataset data/synthetic --model smoke=outputs/demo --output_dir outputs/demo-eval \
		--overwrite
	@echo "Tiny model: outputs/tiny-phi3v   catalogue: data/synthetic   SFT model: outputs/demo"
	@echo "Evaluation: outputs/demo-eval/report.md (metrics.json, predictions.jsonl, price_scatter_*.png)"

# DPO where it has something to fix: a short SFT (360 of the smoke recipe's 1,440 steps) that still misreads prices,
# on-policy preference pairs from its own mistakes, DPO on it (the checkpoint chosen by validation price error, against
# the SFT model's own), then the SFT and DPO models in one report on the test split.
demo-dpo: install
	test -d outputs/tiny-phi3v || $(PY) scripts/make_tiny_model.py --output outputs/tiny-phi3v
	test -d data/synthetic || $(PY) scripts/make_synthetic_catalogue.py --output data/synthetic
	$(PY) scripts/sft.py recipes/smoke/sft-full.yaml --max_steps 360 --eval_strategy no --save_strategy no \
		--output_dir outputs/demo-sft-short
	$(PY) scripts/make_preferences.py --dataset data/synthetic --model outputs/demo-sft-short \
		--output outputs/demo-preferences --overwrite
	$(PY) scripts/dpo.py recipes/smoke/dpo-lora.yaml
	$(PY) scripts/evaluate.py --dataset data/synthetic --model sft=outputs/demo-sft-short dpo=outputs/demo-dpo \
		--output_dir outputs/demo-dpo-eval --overwrite --no_blank_control
	@echo "Short SFT: outputs/demo-sft-short   pairs: outputs/demo-preferences   DPO model: outputs/demo-dpo"
	@echo "Did DPO beat SFT on validation: outputs/demo-dpo/selection.json   test report: outputs/demo-dpo-eval/report.md"

# GRPO on the task's own score: the full smoke SFT model (`make demo` trains it) samples 8 answers per training photo,
# each rewarded per field (format, title, category, price), GRPO on them (the checkpoint chosen by validation price
# error, against the SFT model's own); then the same from the short SFT of `make demo-dpo`; SFT and GRPO in one report
# on the test split for each.
demo-grpo: install
	test -d outputs/tiny-phi3v || $(PY) scripts/make_tiny_model.py --output outputs/tiny-phi3v
	test -d data/synthetic || $(PY) scripts/make_synthetic_catalogue.py --output data/synthetic
	test -d outputs/demo || $(PY) scripts/sft.py recipes/smoke/sft-full.yaml
	$(PY) scripts/grpo.py recipes/smoke/grpo-lora.yaml
	$(PY) scripts/evaluate.py --dataset data/synthetic --model sft=outputs/demo grpo=outputs/demo-grpo \
		--output_dir outputs/demo-grpo-eval --overwrite --no_blank_control
	test -d outputs/demo-sft-short || $(PY) scripts/sft.py recipes/smoke/sft-full.yaml --max_steps 360 \
		--eval_strategy no --save_strategy no --output_dir outputs/demo-sft-short
	$(PY) scripts/grpo.py recipes/smoke/grpo-lora.yaml --model_name_or_path outputs/demo-sft-short \
		--output_dir outputs/demo-grpo-short
	$(PY) scripts/evaluate.py --dataset data/synthetic --model sft=outputs/demo-sft-short grpo=outputs/demo-grpo-short \
		--output_dir outputs/demo-grpo-short-eval --overwrite --no_blank_control
	@echo "GRPO models: outputs/demo-grpo (from the full SFT), outputs/demo-grpo-short (from the short SFT)"
	@echo "Did GRPO beat SFT on validation: outputs/demo-grpo*/selection.json   test reports: outputs/demo-grpo*-eval/report.md"

# The three published Cookbook tasks on the tiny model and offline fixtures in the Hub schemas: per task, evaluate,
# train with the published recipe (overridden for CPU), evaluate, report (a few minutes on CPU).
REPRODUCE_CPU := --model_name_or_path outputs/tiny-phi3v --use_cpu true --bf16 false --dtype float32 \
	--attn_implementation sdpa --num_crops 4 --max_length 512 --activation_checkpointing false \
	--gradient_accumulation_steps 1 --per_device_train_batch_size 8 --learning_rate 3e-3 --warmup_steps 0 \
	--dataloader_num_workers 0 --save_strategy no
demo-reproduce: install
	test -d outputs/tiny-phi3v || $(PY) scripts/make_tiny_model.py --output outputs/tiny-phi3v
	test -d data/reproduction || $(PY) scripts/make_reproduction_fixtures.py --output_dir data/reproduction
	$(PY) scripts/reproduce.py recipes/cookbook/docvqa/sft-full.yaml --report_dir outputs/reproduce-docvqa --overwrite \
		--eval_dataset data/reproduction/docvqa_1200_examples --eval_split test \
		--dataset_name data/reproduction/the_cauldron/docvqa $(REPRODUCE_CPU) --num_train_epochs 20 \
		--output_dir outputs/reproduce-docvqa/model
	$(PY) scripts/reproduce.py recipes/cookbook/hateful-memes/sft-full.yaml --report_dir outputs/reproduce-hateful-memes \
		--overwrite --eval_dataset data/reproduction/the_cauldron/hateful_memes --eval_split "train[:40]" \
		--dataset_name data/reproduction/the_cauldron/hateful_memes --dataset_train_split "train[40:]" \
		$(REPRODUCE_CPU) --num_train_epochs 12 --output_dir outputs/reproduce-hateful-memes/model
	$(PY) scripts/reproduce.py recipes/cookbook/nlvr2/sft-full-phi3.5.yaml --report_dir outputs/reproduce-nlvr2 \
		--overwrite --eval_dataset data/reproduction/the_cauldron/nlvr2 --eval_split "train[:40]" \
		--dataset_name data/reproduction/the_cauldron/nlvr2 --dataset_train_split "train[40:]" \
		$(REPRODUCE_CPU) --num_train_epochs 12 --output_dir outputs/reproduce-nlvr2/model
	@echo "Reports: outputs/reproduce-{docvqa,hateful-memes,nlvr2}/report.md (predictions.jsonl, reproduction.json)"

# The model cards' benchmarks through lmms-eval, offline: the tiny model before and after the smoke SFT on fixtures of
# POPE, ChartQA, TextVQA and AI2D in their Hub layouts (about a minute once the demo's model exists).
demo-forgetting: install-lmms
	test -d outputs/demo || $(MAKE) demo
	test -d data/benchmarks || $(PY) scripts/make_benchmark_fixtures.py --output_dir data/benchmarks
	$(VENV_LMMS)/bin/python scripts/forgetting.py --base outputs/tiny-phi3v --fine_tuned smoke=outputs/demo \
		--tasks pope chartqa textvqa_val ai2d --data_dir data/benchmarks --card phi-3-vision-128k-instruct \
		--num_crops 1 --output_dir outputs/forgetting-demo --overwrite

# Debian's Chromium for the browser tests (tests/e2e/test_app_browser.py, tests/e2e/test_html_report.py), installed when missing
# and apt-get can run (as root, or with sudo without a password). Never fails: without it those tests skip, saying why.
browser:
	@if command -v chromium >/dev/null 2>&1; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then echo "browser: no apt-get here; the browser tests will skip"; exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "browser: not root and no password-less sudo; the browser tests will skip"; exit 0; fi; \
	($$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium >/dev/null) \
		|| echo "browser: apt-get could not install chromium; the browser tests will skip"

# The demo's SFT model in a browser page at http://127.0.0.1:7860, with test photos of the synthetic catalogue.
app: install
	test -d outputs/demo || $(MAKE) demo
	$(PY) scripts/app.py --model demo=outputs/demo --dataset data/synthetic

# The README's screenshots from the demo's trained model: the app answering a test photo, the report's gallery.
screenshots: install browser
	test -d outputs/demo || $(MAKE) demo
	$(PY) docs/make_screenshots.py

# Every test, one pytest-xdist worker per core (tests/conftest.py gives each process one torch thread and orders the
# run). worksteal hands each worker half the tests (the two-process launches start one half, the other end-to-end tests
# the other, unit tests end both) and lets an idle worker take half of a busy one's queue.
test: install browser
	$(VENV)/bin/pytest --numprocesses auto --dist worksteal tests

# The unit tests only (tests/unit): the code in-process, no script run as a process, no browser.
test-fast: install
	$(VENV)/bin/pytest --numprocesses auto tests/unit

# The lmms-eval tests (tests/unit/test_card_benchmarks_lmms.py), which `make test` skips without lmms-eval, run in
# .venv-lmms, with the card table's tests beside them.
test-lmms: install-lmms
	$(VENV_LMMS)/bin/python -m pytest tests/unit/test_card_benchmarks_lmms.py tests/unit/test_card_benchmarks_report.py

quality: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

style: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf outputs/tiny-phi3v outputs/demo outputs/demo-eval outputs/demo-sft-short outputs/demo-preferences \
		outputs/demo-dpo outputs/demo-dpo-eval outputs/demo-grpo outputs/demo-grpo-eval \
		outputs/demo-grpo-short outputs/demo-grpo-short-eval data/synthetic outputs/reproduce-docvqa outputs/reproduce-hateful-memes \
		outputs/reproduce-nlvr2 data/reproduction outputs/forgetting-demo data/benchmarks
