"""The package's layering, read from its own import statements (function-level imports too):
the device runtime and the shared core never reach the training side."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgeseg"
# who may import whom, inside edgeseg
ALLOWED = {
    "edgeseg.core": ("edgeseg.core",),
    "edgeseg.runtime": ("edgeseg.core", "edgeseg.runtime"),
    # inside the runtime: the model knows no source, run or server; the sources know no model
    "edgeseg.runtime.model": ("edgeseg.core", "edgeseg.runtime.model"),
    "edgeseg.runtime.sources": ("edgeseg.core", "edgeseg.runtime.sources"),
    "edgeseg.runtime.run": ("edgeseg.core", "edgeseg.runtime.model", "edgeseg.runtime.sources", "edgeseg.runtime.run"),
    "edgeseg.runtime.serve": ("edgeseg.core", "edgeseg.runtime.run", "edgeseg.runtime.serve"),
}
TENSORFLOW = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names if node.module == "edgeseg")
    return found


def modules(package: str):
    folder = PACKAGE.parent / package.replace(".", "/")
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(package):
    allowed = ALLOWED[package]
    bad = []
    for path in modules(package):
        for name in imports_of(path):
            if name.split(".")[0] in TENSORFLOW:
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
            elif name.startswith("edgeseg") and not any(name == a or name.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_rule_sees_a_forbidden_import(tmp_path):
    """The checker itself: a runtime-style module importing the training side is caught."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from edgeseg.data.pipeline import build_train_dataset\n    import tensorflow\n")
    assert {"edgeseg.data.pipeline", "tensorflow"} <= imports_of(module)


def test_no_module_is_a_room_for_everything():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 320, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
