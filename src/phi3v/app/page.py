"""The Gradio page: upload photos (or pick a test photo of the dataset), every model answers, the answers side by side.

Uploads are plain files (`gr.File`), decoded by `open_photo`, so that whatever is uploaded (a PDF, a damaged JPEG,
a 100-megapixel scan) comes back as a message on the page naming the file, while the other photos of the same upload
are still answered.

Example:

```python
>>> page = build_page(load_models({"sft": "outputs/demo"}), examples=load_examples("data/synthetic", "/tmp/ex"))
>>> page.launch(server_name="127.0.0.1", ssr_mode=False)
```
"""

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import gradio as gr

from phi3v.app.answers import answer_photos, answer_rows, check_question, table_headers
from phi3v.app.photos import MAX_PIXELS, PhotoError, open_photo
from phi3v.tasks import Task


# System fonts: the default theme loads Google Fonts, which a machine without internet access cannot reach.
THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
FREE_COLUMN_WIDTHS = ["20%", "15%", "65%"]


def column_widths(num_fields: int) -> list[str]:
    """Photo and model narrow, the answer widest; the fields read from the answers share 37% of the table."""
    if num_fields == 0:
        return FREE_COLUMN_WIDTHS
    return ["14%", "10%", *[f"{37 // num_fields}%"] * num_fields, "39%"]


def build_page(
    models: Mapping[str, tuple],
    task: Task,
    question: str | None = None,
    examples: Sequence = (),
    model_paths: Mapping[str, str] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 64,
    num_crops: int | None = None,
    max_pixels: int = MAX_PIXELS,
) -> gr.Blocks:
    """The page answering uploaded photos with every model.

    Args:
        models (`Mapping[str, tuple]`): model name -> `(model, processor)`, e.g. from `load_models`.
        task ([`~phi3v.tasks.Task`]): what the models were trained for: a task with one trained question (the
            catalogue) keeps it fixed and shows the fields read from each answer; any other lets the question be
            edited and shows the raw answers.
        question (`str`, *optional*): the question asked (the first one, when it can be edited); defaults to the
            task's.
        examples (`Sequence[Example]`, *optional*): test photos with their true answers, from `load_examples`.
        model_paths (`Mapping[str, str]`, *optional*): model name -> where it was loaded from, shown on the page.
        batch_size (`int`, *optional*, defaults to 8): photos per `generate` call.
        max_new_tokens (`int`, *optional*, defaults to 64): generation budget.
        num_crops (`int`, *optional*): overrides the processors' number of HD crops.
        max_pixels (`int`, *optional*, defaults to 40,000,000, data preparation's cap): the largest photo accepted, in
            pixels.

    Returns:
        `gr.Blocks`: the page, to `launch`.
    """
    headers = table_headers(task)

    def respond(files: str | list[str] | None, question: str):
        paths = [files] if isinstance(files, str) else list(files or [])
        photos, names, problems = [], [], []
        for path in paths:
            try:
                photos.append(open_photo(path, max_pixels))
                names.append(Path(path).name)
            except PhotoError as error:
                problems.append(str(error))
        try:
            question = check_question(question)
        except ValueError as error:
            return _status(problems + [str(error)]), [], []
        if not photos:
            return _status(problems, "Upload a photo, or pick one of the examples." if not problems else ""), [], []
        start = time.perf_counter()
        answers = answer_photos(models, photos, question, batch_size, max_new_tokens, num_crops)
        seconds = time.perf_counter() - start
        done = f"{len(photos)} photo(s) answered by {len(models)} model(s) in {seconds:.1f} s."
        gallery = list(zip(photos, names, strict=True))
        return _status(problems, done), gallery, answer_rows(names, answers, task)

    model_list = ", ".join(f"`{name}`" + (f" ({model_paths[name]})" if model_paths else "") for name in models)
    # Uploads stay in Gradio's cache for an hour at most: they may be someone's private photos.
    with gr.Blocks(title="Phi-3-V: try the models", analytics_enabled=False, delete_cache=(3600, 3600)) as page:
        gr.Markdown(f"# Phi-3-V: try the models\nModels: {model_list}. Task: {task.name}.")
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="Photos", file_count="multiple", elem_id="photos")
                question_box = gr.Textbox(
                    value=question or task.question,
                    label="Question (the one the models were trained on)" if task.fixed_question else "Question",
                    interactive=not task.fixed_question,
                    elem_id="question",
                )
                answer_button = gr.Button("Answer", variant="primary", elem_id="answer")
                truth = gr.Textbox(
                    label="True answer (from the dataset)", interactive=False, visible=bool(examples), elem_id="truth"
                )
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                gallery = gr.Gallery(
                    label="Photos as read",
                    columns=4,
                    fit_columns=False,
                    height=240,
                    object_fit="contain",
                    allow_preview=False,
                    elem_id="gallery",
                )
                table = gr.Dataframe(
                    headers=headers,
                    label="Answers",
                    wrap=True,
                    interactive=False,
                    column_widths=column_widths(len(task.answer_fields)),
                    elem_id="answers",
                )
        if examples:
            example_gallery = gr.Gallery(
                value=[(str(example.path), example.truth) for example in examples],
                label="Test photos of the dataset: click one to ask the models, its true answer shows on the left",
                columns=8,
                fit_columns=False,
                height=220,
                object_fit="contain",
                allow_preview=False,
                elem_id="examples",
            )

            def pick_example(selected: gr.SelectData):
                return [str(examples[selected.index].path)], examples[selected.index].truth

            example_gallery.select(pick_example, outputs=[files, truth])
        outputs = [status, gallery, table]
        # An upload of one's own photos has no true answer; picking an example sets both the file and its truth.
        files.upload(lambda: "", outputs=truth)
        # One answer at a time, whichever event asks: the models are shared, and a second batch would only queue on
        # the same device while doubling its memory.
        for event in (files.change, answer_button.click, question_box.submit):
            event(respond, inputs=[files, question_box], outputs=outputs, concurrency_id="models")
    return page


def _status(problems: Sequence[str], done: str = "") -> str:
    """The message line of the page: what was done, then what could not be, one item per file."""
    lines = [done] if done else []
    if problems:
        lines.append("**Not answered:**\n" + "\n".join(f"- {problem}" for problem in problems))
    return "\n\n".join(lines)
