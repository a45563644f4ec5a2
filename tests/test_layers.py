"""The package's shape, checked from its source with ``ast``: no import cycle among jgrok modules (lazy
imports inside functions included), layers that look only down (io, the files, imports no engine, grid or scan;
grid reads no files), no module using another module's underscore names, and no function longer than a reader can
hold without a stated reason."""

from __future__ import annotations

import ast
from pathlib import Path

import jgrok

ROOT = Path(jgrok.__file__).resolve().parent
MAX_LINES = 80
# functions allowed past MAX_LINES, with the reason a reader accepts
LONG_OK: dict[str, str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("jgrok",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]):
    """(jgrok modules this one imports anywhere in its source, [(module, private name, line)] it uses)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps, private, alias = set(), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base != "jgrok" and not base.startswith("jgrok."):
                continue
            for a in node.names:
                full = f"{base}.{a.name}"
                if full in mods:  # a submodule
                    deps.add(full)
                    alias[a.asname or a.name] = full
                else:
                    deps.add(base)
                    if a.name.startswith("_") and base != name:
                        private.append((base, a.name, node.lineno))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "jgrok" or a.name.startswith("jgrok."):
                    deps.add(a.name)
                    if a.asname:
                        alias[a.asname] = a.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in alias
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.append((alias[node.value.id], node.attr, node.lineno))
    deps.discard(name)
    return {d for d in deps if d in mods}, private


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(root):
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graph():
    mods = _modules()
    graph, private = {}, []
    for name, path in mods.items():
        deps, priv = _imports(name, path, mods)
        # a package's __init__ is imported by each of its modules; only its own imports count as its edges
        graph[name] = deps
        private += [(name, *p) for p in priv]
    return graph, private


def test_cycle_finder_finds_a_cycle():  # the checker itself must be able to fail
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_jgrok_modules():
    graph, _ = _graph()
    # jgrok/__init__.py re-exports the public API: every module imports the package first, so its edges are the
    # top of the graph by construction and take no part in a cycle between the modules below it
    graph = {m: {d for d in deps if d != "jgrok"} for m, deps in graph.items() if m != "jgrok"}
    cycles = _cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_io_imports_no_engine_grid_or_scan_and_grid_reads_no_files():
    graph, _ = _graph()
    upper = {"jgrok.engine", "jgrok.grid", "jgrok.scan", "jgrok.results_folder"}
    for name, deps in graph.items():
        if name.startswith("jgrok.io"):
            assert not deps & upper, (name, sorted(deps & upper))
        if name == "jgrok.grid":
            assert not any(d.startswith("jgrok.io") for d in deps), sorted(deps)


def test_no_module_uses_another_modules_private_names():
    _, private = _graph()
    text = [f"{user} uses {mod}.{attr} (line {line})" for user, mod, attr, line in private]
    assert not text, "\n".join(text)


def test_no_function_longer_than_a_reader_can_hold():
    long = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                where = f"{path.relative_to(ROOT)}:{node.name}"
                if n > MAX_LINES and where not in LONG_OK:
                    long.append(f"{where} has {n} lines")
    assert not long, "\n".join(long)


def test_every_from_import_in_jgrok_names_something_that_exists():
    """A late ``from jgrok.x import y`` inside a function runs only when that function does; a module renamed or a
    name moved must fail here, not in the one test that happens to call it."""
    import importlib

    missing = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("jgrok"):
                module = importlib.import_module(node.module)
                for a in node.names:
                    if hasattr(module, a.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{a.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module} import {a.name}")
    assert not missing, "\n".join(missing)
