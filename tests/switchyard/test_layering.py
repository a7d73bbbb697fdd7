"""Every import points down the layers of DESIGN.md, and none hides inside a function.

core (settings, database, traffic-log tables) → domain (adapters, tuner, monitoring) → gateway
→ composition (CLI, first-start preparation, the schema of all packages).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PACKAGES = ("switchyard", "adapters", "tuner", "monitoring", "gateway")
COMPOSITION = {
    "switchyard.cli",
    "switchyard.cli_adapters",
    "switchyard.cli_drift",
    "switchyard.cli_jobs",
    "switchyard.cli_settings",
    "switchyard.bootstrap",
    "switchyard.schema",
}

# What each layer may import besides itself.
ALLOWED = {
    "core": {"core"},
    "adapters": {"core"},
    "tuner": {"core", "adapters"},
    "monitoring": {"core", "adapters", "tuner"},
    "gateway": {"core", "adapters", "tuner", "monitoring"},
    "composition": {"core", "adapters", "tuner", "monitoring", "gateway"},
}

# The only imports allowed inside functions: the CLI defers loading the app (and with it vLLM and
# torch) to the commands that serve it, so `switchyard keys list` does not wait for an engine, and
# the drift monitor (Evidently, pandas, scikit-learn: seconds to import) to `switchyard drift run`.
DEFERRED_OK = {
    ("switchyard.cli", "gateway.app"),
    ("switchyard.cli", "gateway.openapi"),
    ("switchyard.cli_drift", "monitoring.drift.monitor"),
}


def layer_of(module: str) -> str | None:
    top = module.split(".")[0]
    if top not in PACKAGES:
        return None
    if top == "switchyard":
        return "composition" if any(module == m or module.startswith(m + ".") for m in COMPOSITION) else "core"
    return top


def modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found.append((name, path))
    return found


def imports(tree: ast.Module, module: str) -> list[tuple[str, bool]]:
    """(imported module, whether the import is inside a function)."""
    result: list[tuple[str, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                result.extend((alias.name, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against the importing package
                    base = module.split(".")[: -child.level]
                    result.append((".".join([*base, child.module or ""]).rstrip("."), nested))
                elif child.module:
                    result.append((child.module, nested))
            visit(child, nested)

    visit(tree, False)
    return result


def violations() -> list[str]:
    found = []
    for module, path in modules():
        source_layer = layer_of(module)
        assert source_layer is not None
        for target, in_function in imports(ast.parse(path.read_text()), module):
            target_layer = layer_of(target)
            if target_layer is None:
                continue
            if target_layer != source_layer and target_layer not in ALLOWED[source_layer]:
                found.append(f"{module} ({source_layer}) imports {target} ({target_layer}): points up")
            if in_function and (module, target) not in DEFERRED_OK:
                found.append(f"{module} imports {target} inside a function")
    return found


def test_imports_point_down_and_none_hide_in_functions() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("switchyard.config", "core"),
        ("switchyard.traffic.models", "core"),
        ("switchyard.cli", "composition"),
        ("gateway.app", "gateway"),
        ("tuner.curation", "tuner"),
        ("numpy", None),
    ],
)
def test_layer_of(module: str, layer: str | None) -> None:
    assert layer_of(module) == layer


def test_the_checker_sees_an_upward_import() -> None:
    tree = ast.parse("from gateway.app import create_app\ndef f():\n    import adapters.models\n")
    found = imports(tree, "adapters.registry")
    assert found == [("gateway.app", False), ("adapters.models", True)]
