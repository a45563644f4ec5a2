"""The layers of jgrok, read from its source with ast: io (files) looks only down, grid reads no files, and no
module uses another module's private (underscore) names."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "jgrok"


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def imports(tree: ast.Module, names: set[str]) -> dict[str, str]:
    """{local name: jgrok module or module.attribute} of every jgrok import, at any depth (late imports too)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jgrok":
            for a in node.names:
                full = f"{node.module}.{a.name}"
                out[a.asname or a.name] = full if full in names else node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jgrok":
                    out[a.asname or a.name] = a.name
    return out


def test_io_imports_no_engine_grid_or_scan_and_grid_reads_no_files():
    mods = modules()
    upper = ("jgrok.engine", "jgrok.grid", "jgrok.scan", "jgrok.results_folder")
    for name, tree in mods.items():
        used = set(imports(tree, set(mods)).values())
        if name.startswith("jgrok.io"):
            assert not used & set(upper), (name, sorted(used & set(upper)))
        if name == "jgrok.grid":
            assert not any(u.startswith("jgrok.io") for u in used), sorted(used)


def test_no_module_uses_another_modules_private_names():
    mods = modules()
    bad = []
    for name, tree in mods.items():
        local = imports(tree, set(mods))
        bad += [f"{name}: from {full.rsplit('.', 1)[0]} import {alias}" for alias, full in local.items()
                if full not in mods and full.rsplit(".", 1)[1].startswith("_") and not alias.startswith("__")]
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in local
                    and local[node.value.id] in mods and local[node.value.id] != name
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                bad.append(f"{name}: {local[node.value.id]}.{node.attr}")
    assert not bad, bad
