"""The package's modules import downwards only (docs/architecture.rst): no module imports one
in its own or a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

import gru4rec

# Lowest first; a module may import modules of lower layers only.
LAYERS = [
    {"kernels", "caller"},
    {"device", "checkpoint", "metrics"},
    {"matrix", "schedule", "model", "losses", "optim", "samplers", "stopping"},
    {"datasets", "inputs", "training", "inference", "growth"},
    {"trainer", "validation", "params", "persistence"},
    {"estimator"},
    {"cli", "callbacks", "distributed", "__init__", "__main__"},
]


def _imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports (relative or absolute)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("gru4rec."):
                found.add(node.module.split(".")[1])
            elif node.module == "gru4rec":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gru4rec."))
    return found


def test_every_module_is_in_a_layer():
    package = Path(gru4rec.__file__).parent
    modules = {p.stem for p in package.glob("*.py")}
    assert modules == set().union(*LAYERS)


def test_modules_import_lower_layers_only():
    package = Path(gru4rec.__file__).parent
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    wrong = []
    for path in package.glob("*.py"):
        for name in _imports(path) & set(layer_of):
            if layer_of[name] >= layer_of[path.stem] and path.stem not in ("__init__", "__main__"):
                wrong.append(f"{path.stem} imports {name}")
    assert wrong == []
