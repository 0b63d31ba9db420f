"""The house rules, checked at grep level (every import, lazy ones inside functions too; only
`if TYPE_CHECKING:` blocks, which never run, are left out): no import cycle between modules or
between rooms, and the arrows of docs/architecture.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ebpm"
_FROM = re.compile(r"^\s*from\s+(\.*)([\w.]*)\s+import\s+(\([^)]*\)|[^\n]*)", re.M)
_IMPORT = re.compile(r"^\s*import\s+(ebpm[\w.]*)", re.M)
_TYPE_CHECKING = re.compile(r"^([ \t]*)if TYPE_CHECKING:\n(?:\1[ \t]+[^\n]*\n|[ \t]*\n)*", re.M)


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        text = _TYPE_CHECKING.sub("", path.read_text())
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for dots, base, names in _FROM.findall(text):
            if dots:
                parent = package.split(".")[: len(package.split(".")) - (len(dots) - 1)]
                base = ".".join(parent + ([base] if base else []))
            if not base.startswith("ebpm"):
                continue
            for name in re.findall(r"\w+", names.split("#")[0]):
                target = _target(f"{base}.{name}") if f"{base}.{name}" in MODULES else _target(base)
                if target and target != module:
                    graph[module].add(target)
        for base in _IMPORT.findall(text):
            target = _target(base)
            if target and target != module:
                graph[module].add(target)
    return graph


GRAPH = _graph()


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _room(module: str) -> str:
    """ebpm.transfer.pull -> transfer; top-level contract modules stay themselves."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (ROOT / parts[-1]).is_dir() else module


def test_no_module_import_cycle() -> None:
    assert len(MODULES) > 50 and sum(len(t) for t in GRAPH.values()) > 100  # it read imports
    assert _cycles(GRAPH) == []


def test_no_cycle_between_rooms() -> None:
    rooms: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        for target in targets:
            if _room(module) != _room(target):
                rooms.setdefault(_room(module), set()).add(_room(target))
    assert _cycles(rooms) == []


@pytest.mark.parametrize(("low", "high"), [
    ("oci", "loader"), ("loader", "oci"),  # never each other
    ("oci", "cli"), ("loader", "cli"), ("resolver", "cli"), ("build", "cli"),
    ("oci", "transfer"), ("oci", "trust"), ("oci", "deps"), ("resolver", "oci"),
    ("resolver", "deps"), ("loader", "run"), ("build", "transfer"),
])
def test_arrows_point_one_way(low: str, high: str) -> None:
    wrong = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() if _room(m) == low
                   for t in targets if _room(t) == high)
    assert wrong == [], f"{low}/ must not import {high}/"


def test_contracts_do_not_import_rooms() -> None:
    contracts = ["ebpm.errors", "ebpm.config", "ebpm.canonical", "ebpm.versions", "ebpm.files",
                 "ebpm.digests", "ebpm.arches",
                 "ebpm.progress", "ebpm.package", "ebpm.oci.reference", "ebpm.record"]
    allowed = {"ebpm", "ebpm.errors", "ebpm.config", "ebpm.canonical", "ebpm.versions",
               "ebpm.record"}
    for module in contracts:
        assert GRAPH[module] <= allowed, f"{module} imports {sorted(GRAPH[module] - allowed)}"


# How high each room stands in docs/architecture.md's drawing: an import points to a room
# drawn lower, never to one at its own height or above. A new room must be placed here.
HEIGHT = {
    "contracts": 0,
    "oci": 1, "resolver": 1, "loader": 1,
    "build": 2, "ebpm.access": 2,
    "trust": 3, "dev": 3,
    "transfer": 4,
    "deps": 5,
    "run": 6, "hub": 6,
    "serve": 7,
    "cli": 8,
    "ebpm.__main__": 9,  # `python -m ebpm`, above the face it starts
}


def _height(module: str) -> int:
    room = _room(module)
    if room in HEIGHT:
        return HEIGHT[room]
    if room == "ebpm" or room.count(".") == 1:  # the package or a top-level contract module
        return HEIGHT["contracts"]
    raise AssertionError(f"{room}: a room not placed in HEIGHT (tests/test_architecture.py) "
                         f"and docs/architecture.md")


def test_every_arrow_points_down() -> None:
    wrong = sorted(f"{module} -> {target}" for module, targets in GRAPH.items()
                   for target in targets
                   if _room(module) != _room(target)
                   and _height(target) >= max(_height(module), 1))  # contracts may import contracts
    assert wrong == []
