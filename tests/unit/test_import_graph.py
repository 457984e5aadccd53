"""Arrows only downward between the packages of `src/phi3v`: no package imports a package that imports it (directly or
through others), and `phi3v.modeling` imports nothing of the project, so the native model can be read and compared
with Microsoft's reference code on its own.

A package is a folder under `src/phi3v` (its sub-packages included) or a top-level module (`phi3v.errors`); `phi3v`
itself is the registration in `phi3v/__init__.py`. Every import counts, function-level ones included.
"""

import ast
from pathlib import Path


SOURCE = Path(__file__).resolve().parents[2] / "src" / "phi3v"


def module_name(path: Path) -> str:
    parts = ("phi3v", *path.relative_to(SOURCE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """`phi3v.tasks.catalogue.answers` -> `tasks`; `phi3v.errors` -> `errors`; `phi3v` -> `phi3v`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "phi3v"


def imported_modules(path: Path) -> set[str]:
    """The `phi3v` modules a file imports, relative imports resolved."""
    module = module_name(path)
    # The package a relative import starts from: the module's own package (or itself, for an `__init__`).
    anchor = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = anchor[: len(anchor) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from phi3v import outputs` imports the module `phi3v.outputs`
            found |= {f"{target}.{alias.name}" if target == "phi3v" else target for alias in node.names}
    return {name for name in found if name == "phi3v" or name.startswith("phi3v.")}


def package_graph() -> dict[str, set[str]]:
    """Package -> the other packages its modules import."""
    graph = {}
    for path in sorted(SOURCE.rglob("*.py")):
        package = package_of(module_name(path))
        targets = {package_of(name) for name in imported_modules(path)}
        graph.setdefault(package, set()).update(targets - {package})
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_parser_resolves_relative_and_absolute_imports(tmp_path, monkeypatch):
    package = tmp_path / "phi3v" / "tasks" / "catalogue"
    package.mkdir(parents=True)
    (package / "answers.py").write_text(
        "from phi3v.errors import DataError\nfrom .metrics import x\nfrom ..cookbook import y\nfrom phi3v import outputs\n"
        "def f():\n    from phi3v.data.loading import load_splits\nimport os\n"
    )
    monkeypatch.setitem(globals(), "SOURCE", tmp_path / "phi3v")
    assert imported_modules(package / "answers.py") == {
        "phi3v.errors",
        "phi3v.tasks.catalogue.metrics",
        "phi3v.tasks.cookbook",
        "phi3v.outputs",
        "phi3v.data.loading",
    }
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_package_imports_a_package_that_imports_it():
    graph = package_graph()
    assert {"data", "modeling", "preparation", "fixtures", "training", "tasks"} <= set(graph)
    assert cycles(graph) == []


def test_modeling_imports_nothing_of_the_project():
    imports = {
        f"{path.relative_to(SOURCE)}: {name}"
        for path in sorted((SOURCE / "modeling").rglob("*.py"))
        for name in imported_modules(path)
        if not name.startswith("phi3v.modeling")
    }
    assert imports == set()
