"""The library's layers point one way down (docs/architecture.md).

Every module of ``h2t_lib`` is parsed, function-local imports included, and mapped to its layer:

    foundations (skeleton, camera, errors, utils, paper_tables)
      -> data -> model -> losses, metrics -> engine -> apps -> course

``viz`` is a leaf of drawing primitives: anything may import it, and it imports only foundations.
A module may import its own layer or one below; an import of a higher layer, or any circle of imports
between modules (a package's ``__init__`` counts as a module), fails with both files named.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "h2t_lib"

#: layer of each top-level part of the library; higher numbers may import lower ones
LAYERS = {
    "skeleton": 0, "camera": 0, "errors": 0, "utils": 0, "paper_tables": 0,
    "data": 1,
    "model": 2,
    "losses": 3, "metrics": 3,
    "engine": 4,
    "apps": 5,
    "course": 6,
    "__main__": 7, "__init__": 7,
}
VIZ = "viz"
LAYER_NAMES = {0: "foundations", 1: "data", 2: "model", 3: "losses/metrics", 4: "engine", 5: "apps",
               6: "course", 7: "package entry"}


def module_files(root: Path = ROOT) -> dict:
    """{dotted module name: file} for every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for f in sorted((root / PACKAGE).rglob("*.py")):
        parts = f.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _resolve(name: str, modules: dict) -> str | None:
    """The longest prefix of ``name`` that is a module of the package (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def imports_of(module: str, source: str, modules: dict) -> list:
    """[(imported module, line)] for every import of the package in ``source``, at any depth."""
    is_package = modules.get(module, Path()).name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[:len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in names:
            target = _resolve(name, modules) if name.split(".")[0] == PACKAGE else None
            if target and target != module:
                found.append((target, node.lineno))
    return found


def layer_of(module: str):
    """The layer number of a module, or ``VIZ`` for the drawing leaf."""
    parts = module.split(".")
    if len(parts) == 1:
        return LAYERS["__init__"]
    if parts[1] == VIZ:
        return VIZ
    if parts[1] not in LAYERS:
        raise KeyError(f"{module} belongs to no layer: add its top-level name to LAYERS in tests/test_layers.py")
    return LAYERS[parts[1]]


def upward_imports(graph: dict, modules: dict) -> list:
    """One message per import of a higher layer (or, from viz, of anything but foundations and viz)."""
    problems = []
    for module, edges in graph.items():
        src = layer_of(module)
        for target, line in edges:
            dst = layer_of(target)
            if dst == VIZ:
                continue
            allowed = dst == 0 if src == VIZ else dst <= src
            if not allowed:
                where = "viz (drawing only: foundations and viz)" if src == VIZ else LAYER_NAMES[src]
                problems.append(f"{_rel(modules[module])}:{line} ({where}) imports "
                                f"{_rel(modules[target])} ({LAYER_NAMES[dst]}), a higher layer")
    return problems


def circles(graph: dict, modules: dict) -> list:
    """One message per circle of imports, naming the files around it."""
    found, seen = [], set()
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for target, _ in graph.get(node, ()):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append("import circle: " + " -> ".join(_rel(modules[m]) for m in cycle))
            elif target not in state:
                visit(target, stack)
        stack.pop()
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    return found


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def import_graph(modules: dict) -> dict:
    return {m: imports_of(m, f.read_text(encoding="utf-8"), modules) for m, f in modules.items()}


def test_no_upward_import():
    modules = module_files()
    problems = upward_imports(import_graph(modules), modules)
    assert not problems, "\n".join(problems)


def test_no_import_circle():
    modules = module_files()
    problems = circles(import_graph(modules), modules)
    assert not problems, "\n".join(problems)


def test_every_module_has_a_layer():
    for m in module_files():
        layer_of(m)  # raises, naming the module, when it has none


def test_library_imports_no_argparse():
    """Argument parsing belongs to apps/ (one module per command)."""
    offenders = []
    for m, f in module_files().items():
        if layer_of(m) in (LAYERS["apps"], LAYERS["__main__"]):
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
                offenders.append(_rel(f))
            if isinstance(node, ast.ImportFrom) and node.module == "argparse":
                offenders.append(_rel(f))
            if isinstance(node, ast.FunctionDef) and node.name == "add_arguments":
                offenders.append(f"{_rel(f)}:{node.lineno} add_arguments")
    assert not offenders, f"argparse or command options outside apps/: {offenders}"


# --- the checks can fail: a small package with an upward import and a circle -------------------------

def _fake_package(tmp_path: Path, files: dict) -> dict:
    for rel, text in files.items():
        p = tmp_path / PACKAGE / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return module_files(tmp_path)


def test_self_check_finds_an_upward_import(tmp_path):
    modules = _fake_package(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "",
        "data/files.py": "def f():\n    from h2t_lib.engine.train import train\n",  # function-local, still counted
        "engine/__init__.py": "",
        "engine/train.py": "from h2t_lib.data import files\n",
        "viz/__init__.py": "",
        "viz/plot.py": "from h2t_lib.metrics import mpjpe\n",
        "metrics.py": "",
    })
    problems = upward_imports(import_graph(modules), modules)
    assert any("h2t_lib/data/files.py:2" in p and "h2t_lib/engine/train.py" in p for p in problems), problems
    assert any("h2t_lib/viz/plot.py:1" in p and "h2t_lib/metrics.py" in p for p in problems), problems
    assert len(problems) == 2


def test_self_check_finds_a_circle(tmp_path):
    modules = _fake_package(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "from h2t_lib.data.a import *\n",
        "data/a.py": "from . import b\n",
        "data/b.py": "def g():\n    from h2t_lib import data\n",
    })
    problems = circles(import_graph(modules), modules)
    assert len(problems) == 1
    for name in ("h2t_lib/data/__init__.py", "h2t_lib/data/a.py", "h2t_lib/data/b.py"):
        assert name in problems[0], problems


def test_self_check_needs_a_layer(tmp_path):
    modules = _fake_package(tmp_path, {"__init__.py": "", "mystery.py": ""})
    with pytest.raises(KeyError, match="mystery"):
        for m in modules:
            layer_of(m)
