"""The package's modules import downwards only (docs/architecture.rst): no module imports one
in its own or a higher layer."""

from __future__ import annotations

import ast
from pathlib import Path

import gru4rec

# Lowest first; a module may import modules of lower layers only.
LAYERS = [
    {"kernels", "notices", "checks", "defaults", "presets"},
    {"device", "cpu", "checkpoint", "metrics", "state_store", "parameters"},
    {"matrix", "schedule", "model", "losses", "optim", "samplers", "stopping"},
    {"selection"},
    {"step"},
    {"datasets", "inputs", "inference", "growth", "advice"},
    {"trainer", "holdout", "constraints", "persistence", "sessions", "export"},
    {"rollback", "prediction"},
    {"estimator"},
    {"service"},
    {"cli", "callbacks", "distributed", "__init__", "__main__"},
]


def _imports(path: Path, in_subpackage: bool = False) -> set[str]:
    """The package modules that ``path`` imports (relative or absolute); in a subpackage,
    ``from ..x`` names the package's module ``x`` and ``from .x`` a sibling (not counted)."""
    found = set()
    top = 2 if in_subpackage else 1
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level != top and node.level > 0:
                continue
            if node.level == top and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == top:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("gru4rec."):
                found.add(node.module.split(".")[1])
            elif node.module == "gru4rec":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("gru4rec."))
    return found


def _modules() -> dict[str, list[Path]]:
    """Each top-level module or subpackage of the package, with its files."""
    package = Path(gru4rec.__file__).parent
    found = {p.stem: [p] for p in package.glob("*.py")}
    for init in package.glob("*/__init__.py"):
        found[init.parent.name] = sorted(init.parent.glob("*.py"))
    return found


def test_every_module_is_in_a_layer():
    assert set(_modules()) == set().union(*LAYERS)


def test_modules_import_lower_layers_only():
    layer_of = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    wrong = []
    for module, paths in _modules().items():
        for path in paths:
            inside = path.parent.name == module
            for name in _imports(path, inside) & set(layer_of):
                if layer_of[name] >= layer_of[module] and module not in ("__init__", "__main__"):
                    wrong.append(f"{module} imports {name}")
    assert wrong == []


def test_only_the_step_package_picks_the_samplers_and_optimisers_backend():
    """The sampler and the optimiser take their compiled forms as arguments
    (gru4rec.step.parts decides): they never ask the device themselves."""
    package = Path(gru4rec.__file__).parent
    for module in ("samplers", "optim"):
        assert "device" not in _imports(package / f"{module}.py"), module


def test_the_command_line_package_is_read_file_by_file_in_the_top_layer():
    """Each module of gru4rec/cli is checked, as the top layer: none is over the size limit."""
    files = {p.stem: p for p in _modules()["cli"]}
    assert {"__init__", "options", "io", "train", "score", "serve"} <= set(files)
    assert "cli" in LAYERS[-1]
    assert all(len(p.read_text().splitlines()) <= 800 for p in files.values())


def test_no_module_outside_the_estimator_calls_a_private_estimator_method():
    """The command line, recommend_dask and the rest use the estimators' public surface."""
    from gru4rec import GRU4RecNegSampling

    private = {
        name
        for name in dir(GRU4RecNegSampling)
        if name.startswith("_") and not name.startswith("__")
        if callable(getattr(GRU4RecNegSampling, name))
    }
    assert "_validate_params" in private and "_scorer" in private
    wrong = []
    for module, paths in _modules().items():
        for path in paths:
            if module in ("estimator", "prediction"):  # the estimators and their mixin
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in private
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                ):
                    wrong.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert wrong == []
