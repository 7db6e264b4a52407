"""Imports run one way, from the bottom up (issue 16): no module imports from a layer above
its own, lazily or not. `pytest tests/test_layers.py` shows it; the message names the file."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the layers, bottom first; a module may import its own layer and the ones below it
LAYERS = ["gxnor.base", "gxnor.model", "gxnor.export", "gxnor.sim", "gxnor.hw",
          "gxnor.verify", "gxnor.host", "gxnor"]


def packages() -> dict[str, Path]:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {name: ROOT / d for name, d in cfg["tool"]["setuptools"]["package-dir"].items()}


def layer_of(module: str) -> int | None:
    for k in range(len(LAYERS) - 1, -1, -1):
        if module == LAYERS[k] or module.startswith(LAYERS[k] + "."):
            # gxnor.X for a layer X is that layer, plain gxnor.* (cli, bench) is the top
            if LAYERS[k] == "gxnor" and any(module.startswith(p + ".") or module == p
                                            for p in LAYERS[:-1]):
                continue
            return k
    return None


def modules():
    """(module name, file) of every module of the distribution."""
    for pkg, folder in packages().items():
        for f in folder.rglob("*.py"):
            rel = f.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([pkg, *parts])
            owner = max((p for p in packages() if name == p or name.startswith(p + ".")),
                        key=len)
            if owner == pkg:
                yield name, f, f.name == "__init__.py"


def imports(name: str, path: Path, is_package: bool):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target, node.lineno


def test_every_module_imports_only_its_layer_and_below():
    found = list(modules())
    assert len(found) > 40
    wrong = []
    for name, path, is_package in found:
        own = layer_of(name)
        assert own is not None, name
        for target, line in imports(name, path, is_package):
            other = layer_of(target)
            if other is not None and other > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {name} ({LAYERS[own]}) imports "
                             f"{target} ({LAYERS[other]})")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from gxnor.hw import rtl\n")
    assert [layer_of(t) for t, _ in imports("gxnor.export.bad", bad, False)] == [4]
    assert layer_of("gxnor.export.bad") == 2 and layer_of("gxnor.cli") == 7
