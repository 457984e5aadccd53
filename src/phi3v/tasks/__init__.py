"""Tasks: how a dataset's rows are asked, answered and scored."""
