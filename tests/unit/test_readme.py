"""The commands of the documentation are real, and the ones that can run offline on CPU do run.

Commands are read from the `bash` code blocks and the inline code of `README.md` and `recipes/README.md`, from the
usage lines of the module docstrings under `scripts/`, `benchmarks/` and `src/phi3v/`, and from the headers of the
recipes. Every command is checked statically: the scripts, recipes and accelerate configs it names exist, every
`--flag` is one its script (or `accelerate launch`) accepts, and every `make` target is in the Makefile. Every
`outputs/` or `data/` path that a command or a recipe reads is written by a recipe or by a documented command.

Then each command is either RUN (tests/e2e/test_readme.py), in a temporary folder standing for the working directory, or
listed in `NOT_RUN` with the reason it cannot run offline on CPU in seconds. A new command that is neither fails
`test_every_command_is_run_or_listed`: run it (add its script to `RUNNERS`) or list it with a reason.

A command runs as written, in-process (`runpy`, as `python SCRIPT` would), with two liberties: the inputs it reads
and no earlier command of the same document wrote are stand-ins (a LoRA adapter over a tiny random Phi-3-V for any
model, the tiny checkpoint for a base model, a 60-product synthetic catalogue for any dataset, two small photos for
images), and the flags in `SCALE_DOWN` are appended (argparse keeps the last value) so that each run takes seconds.
"""

import ast
import contextlib
import dataclasses
import functools
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from ..evaluation_helpers import REPO_ROOT


MARKDOWN = ["README.md", "recipes/README.md"]
SCRIPTS = sorted(
    str(path.relative_to(REPO_ROOT)) for path in [*REPO_ROOT.glob("scripts/*.py"), *REPO_ROOT.glob("benchmarks/*.py")]
)
DOCSTRING_FILES = SCRIPTS + sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "src").rglob("*.py"))
RECIPE_FILES = sorted(str(path.relative_to(REPO_ROOT)) for path in (REPO_ROOT / "recipes").rglob("*.yaml"))
DOCUMENTS = MARKDOWN + DOCSTRING_FILES + RECIPE_FILES

# Scripts parsed by TrlParser over these dataclasses (plus `--config`); the others are argparse scripts.
TRL_SCRIPTS = {
    "scripts/sft.py": "SFTConfig",
    "scripts/dpo.py": "DPOConfig",
    "benchmarks/recipe_throughput.py": "SFTConfig",
}
# A dataclass of its own that a TrlParser script parses too, by name in the script.
TRL_SCRIPT_ARGUMENTS = {"benchmarks/recipe_throughput.py": "BenchmarkArguments"}
# Argparse scripts that pass the flags they do not know on to another script.
PASSES_ON_TO = {"scripts/reproduce.py": "scripts/sft.py", "scripts/plan.py": "scripts/sft.py"}

# Commands that are not run here, by a substring of the command (matched whole: not followed by a word character or
# a dash), with the reason. The first match wins.
NOT_RUN = {
    "make demo-dpo": "the demo, then preference pairs and DPO training on CPU (minutes); `make demo-dpo` runs it",
    "make demo-grpo": "the demo, then two GRPO trainings and evaluations on CPU (minutes); `make demo-grpo` runs it "
    "(tests/e2e/test_grpo.py runs the smoke recipe shortened)",
    "make demo": "installs, then about 5 minutes of CPU training and evaluation; `make demo` runs it "
    "(its steps: tests/e2e/test_sft_smoke.py, tests/unit/test_evaluate.py)",
    "make test-fast": "runs the unit tests (tests/unit), this test included",
    "make test": "runs the whole test suite, this test included",
    "make install": "creates .venv and installs the pinned stack from PyPI (network)",
    "make quality": "ruff over the tree: a check of its own, not a test",
    "make style": "rewrites the tree with ruff",
    "make clean": "deletes the demo's outputs in the checkout",
    "make demo-reproduce": "the three reproductions on the tiny model and the fixtures (minutes of CPU training); "
    "tests/e2e/test_reproduce.py runs one end to end",
    "make screenshots": "trains the demo model when missing (minutes), then serves it in headless Chromium; "
    "tests/e2e/test_app_browser.py drives the same page",
    "make app": "serves the demo model in a web page until stopped (tests/e2e/test_app_browser.py drives scripts/app.py)",
    "pytest": "runs the test suite (`make test`)",
    "ruff": "lint and format over the tree (`make quality`)",
    "pip install": "downloads from PyPI or the PyTorch index (network)",
    "python -m venv": "creates a virtual environment (installation)",
    ".venv/bin/activate": "changes the calling shell (installation)",
    "prepare_dataset.py --output_dir data/burberry": "downloads the DBQ/Burberry catalogue from the Hub and its "
    "images from the CDN (tests/unit/test_data_prepare.py runs the same pipeline on local tables)",
    "--source catalogue.parquet": "reads a catalogue table of your own (tests/unit/test_data_prepare.py runs local tables)",
    "accelerate launch": "GPU or multi-process launch with the bf16 GPU configs (tests/e2e/test_two_processes.py "
    "launches the smoke recipe on 2 CPU processes)",
    "sbatch": "submits to a Slurm cluster (tests/unit/test_recipes.py checks launch.slurm with `bash -n`)",
    "--device cuda": "needs a CUDA GPU",
    "--base_model /models/Phi-3-vision-128k-instruct": "a local copy of the official checkpoint (4.2B weights)",
    "scripts/sft.py recipes/burberry": "trains Phi-3-Vision (weights from the Hub) on a GPU",
    "scripts/sft.py recipes/smoke/sft-full.yaml": "minutes of CPU training; tests/e2e/test_sft_smoke.py runs it shortened",
    "scripts/sft.py --config recipes/smoke/sft-full.yaml": "CPU training; tests/e2e/test_sft_smoke.py runs the smoke recipe",
    "scripts/dpo.py recipes/smoke/dpo-lora.yaml": "DPO training on the demo's SFT model; tests/e2e/test_dpo.py runs it "
    "shortened",
    "scripts/grpo.py recipes/smoke/grpo-lora.yaml": "GRPO training on the demo's SFT model (minutes); "
    "tests/unit/test_grpo.py runs it shortened",
    "--check_only true": "a recipe's trainer built on its real checkpoint (named RECIPE in the text); "
    "tests/e2e/test_reproduce.py runs it before a reproduction",
    "wandb sync": "uploads offline runs to W&B (account and network)",
    "scripts/plan.py": "reads the recipes of the checkout; tests/unit/test_plan.py runs it on them, offline",
    "scripts/reproduce.py recipes/cookbook/hateful-memes/sft-full.yaml --report_dir": "a minute of CPU training and evaluation; "
    "tests/e2e/test_reproduce.py runs it on its own fixtures (`make demo-reproduce` runs all three tasks)",
    "benchmarks/recipe_throughput.py": "training steps of a recipe, sized for a GPU; "
    "tests/unit/test_benchmark_throughput.py runs it at tiny size on CPU",
    "scripts/app.py": "serves a web page until stopped; tests/e2e/test_app_browser.py starts it on the tiny model and "
    "drives it in headless Chromium",
    "scripts/forgetting.py": "needs lmms-eval (.venv-lmms) and, for the cards' benchmarks, the Hub and a GPU; "
    "tests/unit/test_card_benchmarks_lmms.py runs it on the benchmark fixtures and a LoRA adapter (`make test-lmms`)",
    "-m lmms_eval": "lmms-eval's own command line, in .venv-lmms, on the Hub's datasets",
    "make install-lmms": "creates .venv-lmms and installs lmms-eval from PyPI (network)",
    "make test-lmms": "installs lmms-eval (network), then runs its tests",
    "make demo-forgetting": "installs lmms-eval (network) and runs the demo first if needed (minutes); "
    "tests/unit/test_card_benchmarks_lmms.py runs scripts/forgetting.py on the fixtures",
}

# Scripts whose documented commands run here. A command of theirs that is not in NOT_RUN runs.
RUNNERS = {
    "scripts/make_tiny_model.py",
    "scripts/make_synthetic_catalogue.py",
    "scripts/make_reproduction_fixtures.py",
    "scripts/make_benchmark_fixtures.py",
    "scripts/make_preferences.py",
    "scripts/evaluate.py",
    "scripts/predict.py",
    "scripts/merge_lora.py",
    "benchmarks/padding.py",
    "benchmarks/generation_batching.py",
}

# Appended to a run (argparse keeps the last value): the same code paths on less data.
SCALE_DOWN = {
    "scripts/make_synthetic_catalogue.py": ["--num_products", "60"],
    "scripts/make_reproduction_fixtures.py": [
        *("--docvqa_train_rows", "4", "--docvqa_test_rows", "4", "--cauldron_docvqa_rows", "4"),
        *("--hateful_memes_rows", "4", "--nlvr2_rows", "4"),
    ],
    "scripts/make_preferences.py": ["--max_new_tokens", "8"],
    "scripts/evaluate.py": ["--max_new_tokens", "8"],
    "scripts/predict.py": ["--max_new_tokens", "8"],
    "benchmarks/padding.py": ["--rows", "200"],
    "benchmarks/generation_batching.py": [
        *("--num_samples", "4", "--repeats", "1", "--max_new_tokens", "4", "--batch_sizes", "1", "2")
    ],
}

# What a runnable script reads, by flag (POSITIONAL: its positional arguments), and the stand-in for a missing path.
POSITIONAL = ""
INPUTS = {
    "scripts/make_preferences.py": {"--dataset": "catalogue", "--model": "model"},
    "scripts/evaluate.py": {"--dataset": "catalogue", "--model": "model", "--base_model": "checkpoint"},
    "scripts/predict.py": {"--model": "model", "--base_model": "checkpoint", POSITIONAL: "images"},
    "scripts/merge_lora.py": {"--adapter": "model", "--base_model": "checkpoint"},
    "benchmarks/generation_batching.py": {"--dataset": "catalogue", "--model": "model"},
}
# Flags taking several values (nargs="+"), by script.
MANY_VALUES = {"scripts/evaluate.py": ("--model",), "scripts/app.py": ("--model",)}
OUTPUT_FLAGS = ("--output", "--output_dir", "--output_json")
# Flags whose value is a path a command reads (`NAME=PATH` for evaluate's models), for the outputs/ and data/ check.
READ_FLAGS = ("--model", "--adapter", "--dataset", "--base_model")

PROGRAMS = ("python", "python3", "accelerate", "make", "pip", "sbatch", "wandb", "pytest", "ruff", ".", "source")
# Programs also recognised by path (`.venv/bin/python`).
VENV_PROGRAMS = ("python", "python3", "accelerate", "pip", "pytest", "ruff", "wandb")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
REPO_PATH = re.compile(r"^(?:scripts|benchmarks|recipes|accelerate_configs|tests|src)/")


@dataclasses.dataclass(frozen=True)
class Command:
    document: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()

    @property
    def program(self) -> str:
        name = Path(self.argv[0]).name
        return name if name in VENV_PROGRAMS else self.argv[0]

    @property
    def text(self) -> str:
        return shlex.join(self.argv)

    @property
    def script(self) -> str | None:
        """The Python script the command runs (`python S`, `accelerate launch ... S`), or None."""
        if self.program in ("python", "python3") and len(self.argv) > 1 and self.argv[1].endswith(".py"):
            return self.argv[1]
        if self.program == "accelerate" and self.argv[1:2] == ("launch",):
            return next((token for token in self.argv if token.endswith(".py")), None)
        return None

    @property
    def script_args(self) -> list[str]:
        return list(self.argv[self.argv.index(self.script) + 1 :]) if self.script else []

    def __str__(self) -> str:
        return f"{self.document}: {self.text}"


# ---------------------------------------------------------------------------------------------------------------------
# Extraction


def split_commands(line: str, document: str) -> list[Command]:
    """One shell line (continuations joined) -> its commands, split at `&&`, `||`, `;` and `|`."""
    line = line.strip().removeprefix("$ ")
    commands, tokens = [], []
    for token in [*shlex.split(line, comments=True), "&&"]:
        if token in ("&&", "||", ";", "|"):
            env = []
            while tokens and re.match(r"^[A-Za-z_]\w*=", tokens[0]):
                env.append(tuple(tokens.pop(0).split("=", 1)))
            if tokens:
                commands.append(Command(document, tuple(tokens), tuple(env)))
            tokens = []
        else:
            tokens.append(token)
    return commands


FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SHELL_LANGUAGES = {"bash", "sh", "shell", "console", "zsh"}
LOOKS_LIKE_A_COMMAND = re.compile(r"^\s*(?:\$ )?(?:python3?|make|accelerate|pip|sbatch) ")


def markdown_commands(document: str) -> list[Command]:
    text = (REPO_ROOT / document).read_text()
    commands = []
    for language, body in FENCE.findall(text):
        if language in SHELL_LANGUAGES:
            for line in body.replace("\\\n", " ").splitlines():
                commands += split_commands(line, document)
    for span in re.findall(r"`([^`\n]+)`", FENCE.sub("", text)):
        words = span.split()
        if len(words) < 2 or (words[0] == "accelerate" and not any(word.endswith(".py") for word in words)):
            continue  # `python`, `accelerate launch`: a name, not a command
        if words[0] in PROGRAMS[:-2] or Path(words[0]).name in VENV_PROGRAMS:
            commands += split_commands(span, document)
        elif re.match(r"^(?:scripts|benchmarks)/\w+\.py$", words[0]):  # `scripts/sft.py RECIPE`
            commands += split_commands(f"python {span}", document)
    return commands


DOCSTRING_COMMAND = re.compile(r"^ {2,}(?:[A-Z_]+=\S+ +)*(?:python3?|accelerate|make) ")
HEADER_COMMAND = re.compile(r"^# {2,}((?:[A-Z_]+=\S+ +)*(?:python3?|accelerate|make) .*)$")


def continued_lines(lines: list[str], start: int) -> str:
    """The line at `start` with its backslash continuations."""
    text, index = lines[start], start
    while text.rstrip().endswith("\\") and index + 1 < len(lines):
        index += 1
        text = text.rstrip()[:-1] + " " + lines[index].lstrip("# ")
    return text


def docstring_commands(document: str) -> list[Command]:
    docstring = ast.get_docstring(ast.parse((REPO_ROOT / document).read_text())) or ""
    lines = docstring.splitlines()
    commands = []
    for index, line in enumerate(lines):
        if DOCSTRING_COMMAND.match(line) and not (index and lines[index - 1].rstrip().endswith("\\")):
            commands += split_commands(continued_lines(lines, index), document)
    return commands


def recipe_header_commands(document: str) -> list[Command]:
    lines = [line for line in (REPO_ROOT / document).read_text().splitlines() if line.startswith("#")]
    commands = []
    for index, line in enumerate(lines):
        if HEADER_COMMAND.match(line) and not (index and lines[index - 1].rstrip().endswith("\\")):
            commands += split_commands(HEADER_COMMAND.match(continued_lines(lines, index)).group(1), document)
    return commands


@functools.cache
def document_commands(document: str) -> tuple[Command, ...]:
    if document.endswith(".md"):
        commands = markdown_commands(document)
    elif document.endswith(".py"):
        commands = docstring_commands(document)
    else:
        commands = recipe_header_commands(document)
    return tuple(dict.fromkeys(commands))  # each distinct command once, in order


def all_commands() -> list[Command]:
    return [command for document in DOCUMENTS for command in document_commands(document)]


def listed_reason(command: Command) -> str | None:
    for key, reason in NOT_RUN.items():
        if re.search(re.escape(key) + r"(?![\w-])", command.text):
            return reason
    return None


def is_run(command: Command) -> bool:
    return listed_reason(command) is None and command.program in ("python", "python3") and command.script in RUNNERS


def runs_by_document() -> dict[str, list[Command]]:
    """The commands run here, each distinct one once (in the first document that has it), by document."""
    seen, runs = set(), {}
    for command in all_commands():
        if is_run(command) and (command.argv, command.env) not in seen:
            seen.add((command.argv, command.env))
            runs.setdefault(command.document, []).append(command)
    return runs


def test_the_documentation_has_commands_to_run_and_to_list():
    readme = {command.text for command in document_commands("README.md")}
    assert {"make demo", "make test"} <= readme
    runs = runs_by_document()
    assert runs.get("README.md"), "no README command runs here: the test would prove nothing about the README"
    run_scripts = {command.script for commands in runs.values() for command in commands}
    assert run_scripts == RUNNERS, "every script in RUNNERS has a documented command, run here"


@pytest.mark.parametrize("document", MARKDOWN)
def test_shell_commands_are_in_shell_blocks(document):
    """Commands in an untagged or other block would escape this test: they belong in ```bash blocks."""
    stray = []
    for language, body in FENCE.findall((REPO_ROOT / document).read_text()):
        if language not in SHELL_LANGUAGES | {"python"}:
            stray += [line for line in body.splitlines() if LOOKS_LIKE_A_COMMAND.match(line)]
    assert not stray, f"{document}: commands outside ```bash blocks: {stray}"


def test_every_command_is_run_or_listed():
    unknown = [str(command) for command in all_commands() if not is_run(command) and listed_reason(command) is None]
    assert not unknown, (
        "Documented commands that this test neither runs nor lists as not runnable offline: add the script to RUNNERS "
        "(with stand-ins in INPUTS) or a substring and the reason to NOT_RUN:\n" + "\n".join(unknown)
    )


# ---------------------------------------------------------------------------------------------------------------------
# Static checks: files, flags, make targets, outputs/ and data/ paths


@functools.cache
def script_help(script: str) -> str:
    """`python SCRIPT --help`, run in-process."""
    output, argv = io.StringIO(), sys.argv
    sys.argv = [script, "--help"]
    try:
        with contextlib.redirect_stdout(output), pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(REPO_ROOT / script), run_name="__main__")
    finally:
        sys.argv = argv
    assert exit_info.value.code in (0, None), f"{script} --help exited with {exit_info.value.code}"
    return output.getvalue()


@functools.cache
def accepted_flags(script: str) -> frozenset[str]:
    if script in TRL_SCRIPTS:
        import trl

        from phi3v.training import Phi3VModelConfig, Phi3VScriptArguments

        classes = (Phi3VScriptArguments, getattr(trl, TRL_SCRIPTS[script]), Phi3VModelConfig)
        if script in TRL_SCRIPT_ARGUMENTS:
            classes += (runpy.run_path(str(REPO_ROOT / script))[TRL_SCRIPT_ARGUMENTS[script]],)
        names = {field.name for cls in classes for field in dataclasses.fields(cls)} | {"config", "help"}
        return frozenset({f"--{name}" for name in names} | {f"--no_{name}" for name in names})
    # argparse: the option strings of the "options:" section (the description before it quotes example commands).
    options = script_help(script).partition("\noptions:\n")[2]
    invocations = [re.split(r"\s{2,}", line.strip())[0] for line in options.splitlines() if re.match(r"^  -", line)]
    flags = frozenset(flag for invocation in invocations for flag in re.findall(r"--[\w-]+", invocation))
    if script in PASSES_ON_TO:  # flags it does not know go to another script
        flags |= accepted_flags(PASSES_ON_TO[script])
    return flags


@functools.cache
def accelerate_flags() -> frozenset[str]:
    from accelerate.commands.launch import launch_command_parser

    return frozenset(launch_command_parser()._option_string_actions)


@functools.cache
def make_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([\w.-]+)\s*:(?!=)", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE))


def flag_values(argv: list[str] | tuple[str, ...], flag: str, script: str | None = None) -> list[str]:
    """The value after each `flag` (all of them up to the next `--option` for the `MANY_VALUES` flags of `script`), and
    `--flag=value` forms."""
    values = []
    for index, token in enumerate(argv):
        if token == flag:
            for value in argv[index + 1 : None if flag in MANY_VALUES.get(script, ()) else index + 2]:
                if value.startswith("--"):
                    break
                values.append(value)
        elif token.startswith(flag + "="):
            values.append(token.split("=", 1)[1])
    return values


def positional_args(argv: list[str]) -> list[str]:
    """Arguments that are neither flags nor the value of the flag before them (every flag of the runnable scripts
    with positional arguments takes one value)."""
    return [
        token
        for index, token in enumerate(argv)
        if not token.startswith("--")
        and (index == 0 or not argv[index - 1].startswith("--") or "=" in argv[index - 1])
    ]


def command_problems(command: Command) -> list[str]:
    problems = []
    argv = command.argv
    for token in argv:
        for path in {token, token.split("=", 1)[-1]}:
            if REPO_PATH.match(path) and not (REPO_ROOT / path).exists():
                problems.append(f"{path} does not exist")
    program = command.program
    if program == "make":
        targets = [target for target in argv[1:] if "=" not in target and not target.startswith("-")]
        problems += [f"no make target {target!r}" for target in targets if target not in make_targets()]
    elif program == "accelerate":
        if argv[1] != "launch" or command.script is None:
            problems.append("expected `accelerate launch [options] SCRIPT`")
        else:
            options = argv[2 : argv.index(command.script)]
            for token in options:
                if token.startswith("-") and token.split("=")[0] not in accelerate_flags():
                    problems.append(f"`accelerate launch` has no option {token}")
            for config in flag_values(options, "--config_file"):
                if not REPO_PATH.match(config) and not (REPO_ROOT / config).is_file():  # else checked above
                    problems.append(f"accelerate config {config} does not exist")
    elif program == "sbatch":
        arguments = [token for token in argv[1:] if not token.startswith("-")]
        if arguments[:1] == ["recipes/launch.slurm"]:
            recipe, config = (arguments[1:] + [None, None])[:2]
            if recipe is None or not (REPO_ROOT / recipe).is_file():
                problems.append(f"launch.slurm needs a recipe; got {recipe}")
            if config is None or not (REPO_ROOT / "accelerate_configs" / f"{config}.yaml").is_file():
                problems.append(f"launch.slurm's accelerate config accelerate_configs/{config}.yaml does not exist")
    elif program not in PROGRAMS:
        problems.append(f"unknown program {program!r}")
    if command.script is not None:
        if not (REPO_ROOT / command.script).is_file():
            problems.append(f"script {command.script} does not exist")
        else:
            for token in command.script_args:
                if token.startswith("--") and token.split("=")[0] not in accepted_flags(command.script):
                    problems.append(f"{command.script} accepts no {token.split('=')[0]}")
    return problems


@pytest.mark.parametrize("document", [document for document in DOCUMENTS if document_commands(document)])
def test_commands_name_real_files_flags_and_targets(document):
    problems = [
        f"{command.text}\n    {problem}"
        for command in document_commands(document)
        for problem in command_problems(command)
    ]
    assert not problems, f"{document}:\n" + "\n".join(problems)


MARKDOWN_PATH = re.compile(
    r"(?<![\w/.-])((?:scripts|benchmarks|recipes|accelerate_configs|tests|src/phi3v)/[\w./-]*\w)"
)


@pytest.mark.parametrize("document", MARKDOWN)
def test_markdown_names_only_files_that_exist(document):
    text = (REPO_ROOT / document).read_text()
    paths = MARKDOWN_PATH.findall(text)
    missing = sorted({path for path in paths if "*" not in path and not (REPO_ROOT / path).exists()})
    assert not missing, f"{document} names files that do not exist: {missing}"


def repo_data_paths(values) -> set[str]:
    paths = {value.split("=", 1)[-1].rstrip("/") for value in values}
    return {path for path in paths if re.match(r"^(?:outputs|data)/", path)}


def test_outputs_and_data_paths_read_are_written_by_a_recipe_or_a_command():
    """A documented `--model outputs/X` or `--dataset data/Y` names what a recipe or a documented command writes."""
    written, read = set(), {}
    for path in RECIPE_FILES:
        recipe = yaml.safe_load((REPO_ROOT / path).read_text())
        written |= repo_data_paths([recipe.get("output_dir", "")])
        for key in ("model_name_or_path", "dataset_name"):
            read.update(dict.fromkeys(repo_data_paths([recipe.get(key, "")]), path))
    for command in all_commands():
        args, script = command.script_args, command.script
        written |= repo_data_paths(value for flag in OUTPUT_FLAGS for value in flag_values(args, flag, script))
        values = [value for flag in READ_FLAGS for value in flag_values(args, flag, script)]
        read.update(dict.fromkeys(repo_data_paths(values), str(command)))
    unwritten = sorted(f"{path} (read by {reader})" for path, reader in read.items() if path not in written)
    assert not unwritten, "Paths that no recipe and no documented command writes:\n" + "\n".join(unwritten)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script):
    assert re.search(r"^usage: ", script_help(script), re.MULTILINE)
    assert "--help" in accepted_flags(script)


# ---------------------------------------------------------------------------------------------------------------------
# Runs
