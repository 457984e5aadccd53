"""The GRPO stage in this process: the recipes parse, prompts are tokenised as evaluation asks them, the task's rewards
are TRL reward functions (one per component), a reward function of the user's is checked at start-up, and a few
steps of `scripts/grpo.py` train, log each reward, evaluate the SFT model first and save an adapter that reloads."""

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file
from trl import GRPOConfig, TrlParser

import phi3v  # noqa: F401  (registers the Auto classes)
from phi3v.errors import UsageError
from phi3v.tasks import build_task
from phi3v.tasks.config import TaskConfig
from phi3v.training import (
    Phi3VGRPOScriptArguments,
    Phi3VModelConfig,
    TaskReward,
    load_reward_function,
    parse_recipe,
    reward_functions,
)

from ..safety_helpers import output_of, run_script_here


REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPES = REPO_ROOT / "recipes"
GRPO_RECIPES = sorted(path.relative_to(RECIPES).as_posix() for path in RECIPES.rglob("grpo-*.yaml"))
CATALOGUE = build_task(TaskConfig(task="catalogue"))
TRUTH = {"title": "Red Tote", "category3_code": "BAGS", "full_price": 200.0}
ITEM = {"references": [CATALOGUE.template.render(TRUTH)], "truth": TRUTH}


def parse(args):
    return parse_recipe(TrlParser((Phi3VGRPOScriptArguments, GRPOConfig, Phi3VModelConfig)), args)


def test_the_grpo_recipes_exist_and_parse():
    assert GRPO_RECIPES == ["burberry/grpo-lora.yaml", "cookbook/docvqa/grpo-lora.yaml", "smoke/grpo-lora.yaml"]
    for recipe in GRPO_RECIPES:
        script_args, training_args, model_args = parse([str(RECIPES / recipe), "--use_cpu", "true", "--bf16", "false"])
        assert model_args.use_peft and training_args.eval_on_start and training_args.load_best_model_at_end
        assert len(training_args.reward_weights) == len(script_args.reward_funcs)
        assert training_args.metric_for_best_model and script_args.eval_generations > 0


def test_each_reward_component_is_a_reward_function_named_after_it():
    class Rows(list):
        column_names = ["id", "prompt", "images", "references", "truth"]

    functions = reward_functions(CATALOGUE, None, Rows([ITEM]))
    assert [f.__name__ for f in functions] == ["format", "title", "category", "price"]
    completions = [
        [{"role": "assistant", "content": "Product: Red Tote, Category: BAGS, Full Price: 200.00"}],
        [{"role": "assistant", "content": "Product: Red Tote, Category: SHOES, Full Price: 400.00"}],
        [{"role": "assistant", "content": "a bag"}],
    ]
    kwargs = {"references": [ITEM["references"]] * 3, "truth": [TRUTH] * 3}
    scores = {f.__name__: f(prompts=[None] * 3, completions=completions, **kwargs) for f in functions}
    assert scores == {
        "format": [1.0, 1.0, 0.0],
        "title": [1.0, 1.0, 0.0],
        "category": [1.0, 0.0, 0.0],
        "price": [1.0, 0.0, 0.0],  # a factor of 2 is worth nothing, the truth everything
    }
    docvqa = TaskReward(build_task(TaskConfig(task="docvqa")), "anls")
    assert docvqa([None], ["1999"], references=[["1999", "in 1999"]]) == [1.0]
    conversation = reward_functions(build_task(TaskConfig()), None, Rows([{"references": ["A scarf."]}]))
    assert [f.__name__ for f in conversation] == ["edit_similarity"]


def test_a_reward_function_of_the_users_is_loaded_by_its_dotted_path_and_checked(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        "def brevity(prompts, completions, **kwargs):\n    return [-len(c) for c in completions]\n"
        "def no_kwargs(prompts, completions):\n    return []\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    columns = ["id", "prompt", "images", "references", "truth"]
    for path in ("my_rewards:brevity", "my_rewards.brevity"):
        assert load_reward_function(path, columns)([], ["ab", "abc"]) == [-2, -3]
    refusals = {
        "no_such_module:brevity": "does not import",
        "my_rewards:missing": "has no attribute 'missing'",
        "my_rewards:NOT_CALLABLE": "is not callable",
        "my_rewards:no_kwargs": "cannot take TRL's arguments",
    }
    for path, message in refusals.items():
        with pytest.raises(UsageError, match=message):
            load_reward_function(path, columns)
    with pytest.raises(UsageError, match="not a component of the catalogue task's reward"):
        reward_functions(CATALOGUE, ["prices"], type("Rows", (list,), {"column_names": columns})([ITEM]))


def test_prompts_are_tokenised_as_evaluation_asks_them(tiny_checkpoint):
    # TRL hands the prompt over with the image as a typed part before the tagged text; the ids must be those of the
    # prompt SFT trained on and evaluation asks (`<|image_1|>What is shown...`, no newline), unpadded.
    from trl.data_utils import prepare_multimodal_messages

    from phi3v.inference.loading import load_for_inference
    from phi3v.modeling.chat_format import build_prompt
    from phi3v.training import Phi3VGRPOTrainer
    from phi3v.training.grpo_trainer import phi3v_prompt

    _, processor = load_for_inference(tiny_checkpoint)
    images = [Image.new("RGB", (64, 32), "red"), Image.new("RGB", (40, 40), "blue")]
    prompt = [{"role": "user", "content": "<|image_1|>What is shown in this image?"}]
    prompts = [prepare_multimodal_messages(prompt, images=[image]) for image in images]
    assert phi3v_prompt(prompts[0]) == prompt
    untagged = prepare_multimodal_messages([{"role": "user", "content": "Hi"}], images=images[:1])
    assert phi3v_prompt(untagged) == [{"role": "user", "content": "<|image_1|>\nHi"}]

    trainer = Phi3VGRPOTrainer.__new__(Phi3VGRPOTrainer)  # only the tokenisation, no model
    trainer.processing_class = processor
    prompt_ids, prompt_images, fields = trainer._tokenize_prompts(prompts)
    for ids, image in zip(prompt_ids, images, strict=True):
        expected = processor(build_prompt(processor, prompt), [image])["input_ids"][0].tolist()
        assert ids == expected
    assert len(prompt_ids[0]) != len(prompt_ids[1])  # unpadded: the images differ in size
    assert prompt_images == [[images[0]], [images[1]]] and sorted(fields) == ["image_sizes", "pixel_values"]


def sft_output(tiny_checkpoint: Path, path: Path) -> Path:
    """A stand-in for the smoke SFT output: the tiny model, saved as trained on the catalogue."""
    shutil.copytree(tiny_checkpoint, path)
    TaskConfig(task="catalogue", dataset_format="catalogue").save(path)
    return path


def quick_run(start: Path, catalogue: Path, output_dir: Path, *flags) -> list:
    return [
        "recipes/smoke/grpo-lora.yaml",
        *("--model_name_or_path", start, "--dataset_name", catalogue, "--output_dir", output_dir),
        *("--max_steps", "2", "--eval_steps", "2", "--save_steps", "2", "--max_completion_length", "6"),
        *("--per_device_train_batch_size", "8", "--num_generations", "4", "--eval_generations", "4"),
        *("--dataset_test_split", "validation[:4]", "--per_device_eval_batch_size", "4", "--logging_steps", "1"),
        *flags,
    ]


def test_grpo_trains_logs_each_reward_and_saves_an_adapter_that_reloads(
    tiny_checkpoint, synthetic_catalogue, tmp_path, monkeypatch
):
    from phi3v.inference.generation import answer_items
    from phi3v.inference.loading import load_for_inference

    start = sft_output(tiny_checkpoint, tmp_path / "sft")
    (tmp_path / "run_rewards.py").write_text(
        "def brevity(prompts, completions, **kwargs):\n    return [-len(c[0]['content']) / 100 for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    answer_lengths = []  # the validation answers' length limit at each evaluation

    def validation_answers(model, processor, items, batch_size, max_new_tokens):
        answer_lengths.append(max_new_tokens)
        return answer_items(model, processor, items, batch_size, max_new_tokens)

    monkeypatch.setattr("phi3v.training.generation_validation.answer_items", validation_answers)
    flags = ["--reward_funcs", "format", "price", "run_rewards:brevity", "--reward_weights", "1", "2", "0.5"]
    result = run_script_here("grpo.py", *quick_run(start, synthetic_catalogue, tmp_path / "grpo", *flags))
    assert result.returncode == 0, output_of(result)[-3000:]
    assert answer_lengths and set(answer_lengths) == {6}  # `max_completion_length`, as training samples

    output_dir = tmp_path / "grpo"
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    training = [entry for entry in history if "reward" in entry]
    for name in ("format", "price", "brevity"):
        assert all(f"rewards/{name}/mean" in entry for entry in training), name
    assert all("kl" in entry and "frac_reward_zero_std" in entry for entry in training)
    evaluations = [entry for entry in history if "eval_price_mape" in entry]
    assert [entry["step"] for entry in evaluations] == [0, 2]  # the SFT model first: the bar
    assert "eval_reward" in evaluations[0] and "eval_rewards/price/mean" in evaluations[0]
    verdict = json.loads((output_dir / "selection.json").read_text())
    assert verdict["start_score"] is not None and verdict["metric"] == "eval_price_mape"
    assert "Checkpoint selection" in (output_dir / "README.md").read_text()

    assert json.loads((output_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == str(start)
    model, processor = load_for_inference(output_dir)
    item = {"images": [Image.new("RGB", (64, 64), "red")], "prompt": [{"role": "user", "content": "<|image_1|>Hi"}]}
    assert isinstance(answer_items(model, processor, [item], 1, 4)[0], str)
    # The adapter moved the model away from the SFT model (LoRA's B starts at zero).
    adapter = load_file(output_dir / "adapter_model.safetensors")
    assert any(name.endswith("lora_B.weight") and tensor.abs().sum() > 0 for name, tensor in adapter.items())


def test_a_bad_reward_function_stops_the_run_before_the_model_loads(
    tiny_checkpoint, synthetic_catalogue, tmp_path, monkeypatch
):
    import phi3v.training

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded")

    monkeypatch.setattr(phi3v.training, "load_sft_model", no_model)
    start = sft_output(tiny_checkpoint, tmp_path / "sft")
    for reward, message in (("no_such_module:f", "does not import"), ("prices", "not a component")):
        args = quick_run(start, synthetic_catalogue, tmp_path / "grpo", "--reward_funcs", reward)
        result = run_script_here("grpo.py", *args, "--reward_weights", "1")
        assert result.returncode == 2 and message in result.stderr, output_of(result)[-2000:]
        last_line = result.stderr.strip().splitlines()[-1]
        assert last_line.startswith("error: ") and message in last_line and not (tmp_path / "grpo").exists()
