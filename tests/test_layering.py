"""The layering of docs/architecture.md, checked on the source: lower layers never import
higher ones; only io/ imports onnx; only link/ imports serial; nothing imports firmware_sim or
torch; nothing uses pickle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "edgelearn"

LEVEL = {
    "errors": 0, "fixed": 0, "atomic": 0, "progress": 0, "boundary": 0,
    "model": 1, "kernels": 1, "rules": 1, "memory": 1, "substrate": 1, "device": 1,
    "io": 2, "runtime": 2, "data": 2, "train": 2, "quant": 2,
    "link": 3, "targets": 3, "adapt": 3, "fleet": 3, "cli": 3, "__init__": 3, "__main__": 3,
}


def _module_key(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno


SOURCES = sorted(PKG.rglob("*.py"))


def test_every_module_has_a_layer():
    unknown = {_module_key(p) for p in SOURCES} - set(LEVEL)
    assert not unknown, f"add these to LEVEL and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_respect_layers(path):
    key = _module_key(path)
    mine = LEVEL.get(key, 3)
    for name, line in _imports(path):
        top = name.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line} imports {name}"
        assert top not in ("firmware_sim", "torch", "pickle", "cPickle", "joblib"), where
        if top == "onnx" or top == "onnxruntime":
            assert key == "io", where
        if top == "serial":
            assert key == "link", where
        if top == "edgelearn" and name != "edgelearn":
            other = name.split(".")[1]
            # the package __init__ re-exports the public names, and cli sits on top
            if key in ("__init__", "__main__"):
                continue
            assert LEVEL.get(other, 3) <= mine, f"{where} (layer {mine} -> {LEVEL.get(other)})"


# -- the device side: firmware_sim imports only what a firmware would have -------------------

FIRMWARE = ROOT / "firmware_sim"
FIRMWARE_MAY_USE = ("edgelearn.errors", "edgelearn.fixed", "edgelearn.atomic", "edgelearn.model",
                    "edgelearn.kernels", "edgelearn.rules", "edgelearn.device",
                    "edgelearn.memory.arena", "edgelearn.memory.layout",
                    "edgelearn.memory.profiles", "edgelearn.link.framing", "edgelearn.link.cobs",
                    "edgelearn.link.messages", "edgelearn.link.blobs")
# the simulator's command line is a program like edgelearn's and reports bad options through
# the project's one error path (the in-process cable to a board, which uses the host's pipes,
# lives in tests/_inprocess_board.py, outside the device)
FIRMWARE_EXTRA = {"cli.py": ("edgelearn.boundary",)}


@pytest.mark.parametrize("path", sorted(FIRMWARE.rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_firmware_sim_imports_only_device_code(path):
    extra = FIRMWARE_EXTRA.get(path.name, ())
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    for name, line in imported:
        where = f"{path.relative_to(ROOT)}:{line} imports {name}"
        if name == "edgelearn" or not name.startswith("edgelearn."):
            assert name.split(".")[0] not in ("torch", "pickle", "onnx", "onnxruntime"), where
            continue
        assert name.startswith(FIRMWARE_MAY_USE + extra), where


# -- no import cycles: between modules, and between the packages of one layer ---------------

def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {_module_name(p): p for p in SOURCES}


def _edges(path: Path) -> set[str]:
    """Modules of edgelearn that ``path`` imports (any import statement, lazy ones included;
    ``from pkg import sub`` is an edge to the submodule ``pkg.sub``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    me = _module_name(path)
    out = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            mod = node.module
            if node.level:
                base = me.split(".")[: len(me.split(".")) - node.level
                                    + (1 if path.name == "__init__.py" else 0)]
                mod = ".".join(base + [node.module])
            names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod
                     for a in node.names]
        for n in names:
            while n and n not in MODULES:
                n = n.rpartition(".")[0]
            if n and n != me:
                out.add(n)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
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


def test_no_import_cycle_between_modules():
    graph = {name: _edges(path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_no_import_cycle_between_packages():
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        me = _module_key(path)
        if me in ("__init__", "__main__"):
            continue
        for dep in _edges(path):
            other = dep.split(".")[1] if "." in dep else "__init__"
            if other != me:
                graph.setdefault(me, set()).add(other)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
