"""Properties of resolution on random graphs: sound, complete on small DAGs, stable with a lock."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ebpm.errors import DependencyCycleError, ResolutionError
from ebpm.resolver.dependency import parse_dependencies
from ebpm.resolver.ranges import parse_range
from ebpm.resolver.resolve import Resolution, find_cycle, resolve
from ebpm.resolver.source import MemorySource

REG = "localhost:5000"
VERSIONS = ["0.1.0", "1.0.0", "1.1.0", "1.2.0-rc.1", "1.2.0", "2.0.0", "2.1.0"]
RANGES = [
    "*", "^1", "^1.1", "~1.0", ">=1.1", "<2", "^2", "1.0.0", "^0.1", ">=1.0, <1.2", "^1 || ^2"
]
SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def graphs(draw: Any, *, cycles: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    n = draw(st.integers(1, 5))
    names = [f"p{i}" for i in range(n)]
    graph: dict[str, dict[str, dict[str, str]]] = {}
    for i, name in enumerate(names):
        versions = draw(st.lists(st.sampled_from(VERSIONS), min_size=1, max_size=4, unique=True))
        targets = names if cycles else names[i + 1 :]
        graph[name] = {
            v: draw(st.dictionaries(st.sampled_from(targets), st.sampled_from(RANGES), max_size=2))
            if targets else {}
            for v in versions
        }
    root = draw(st.dictionaries(st.sampled_from(names), st.sampled_from(RANGES), min_size=1,
                                max_size=3))
    return graph, root


def source(graph: dict[str, Any]) -> MemorySource:
    return MemorySource({f"{REG}/{k}": v for k, v in graph.items()})


def run(graph: dict[str, Any], root: dict[str, str], locked: dict[str, str] | None = None,
        *, fast: bool = True) -> Resolution:
    deps = parse_dependencies(root, default_registry=REG)
    return resolve(deps, source(graph), locked=locked, registry=REG, fast=fast)


def check_sound(graph: dict[str, Any], root: dict[str, str], res: Resolution) -> None:
    chosen = {p.package.split("/", 1)[1]: p.version for p in res.packages}
    wanted = [(name, rng) for name, rng in root.items()]
    for name, version in chosen.items():
        assert version in graph[name], "only published versions are chosen"
        wanted.extend(graph[name][version].items())
    for name, rng in wanted:
        assert name in chosen, f"{name} is required but missing"
        assert chosen[name] in parse_range(rng), f"{name}@{chosen[name]} not in {rng}"
    # Nothing beyond what is required.
    assert set(chosen) == {name for name, _ in wanted}


def brute_force(graph: dict[str, Any], root: dict[str, str]) -> bool:
    names = sorted(graph)
    options = [[None, *graph[n]] for n in names]
    for combo in itertools.product(*options):
        chosen = {n: v for n, v in zip(names, combo, strict=True) if v is not None}
        wanted = list(root.items())
        for n, v in chosen.items():
            wanted.extend(graph[n][v].items())
        if all(n in chosen and chosen[n] in parse_range(r) for n, r in wanted):
            return True
    return False


@SETTINGS
@given(graphs(), st.booleans())
def test_result_satisfies_every_constraint_and_is_complete(case: Any, fast: bool) -> None:
    graph, root = case
    try:
        res = run(graph, root, fast=fast)
    except ResolutionError as err:
        assert err.message and err.hint
        assert not brute_force(graph, root), "a solution exists but the resolver gave up"
        return
    check_sound(graph, root, res)


@SETTINGS
@given(graphs())
def test_fast_path_agrees_with_resolvelib_on_failure(case: Any) -> None:
    graph, root = case
    outcomes = []
    for fast in (True, False):
        try:
            run(graph, root, fast=fast)
            outcomes.append("ok")
        except ResolutionError as err:
            outcomes.append(err.message)
    assert outcomes[0] == outcomes[1] or "ok" not in outcomes


@SETTINGS
@given(graphs(cycles=True))
def test_cycles_are_reported_never_returned(case: Any) -> None:
    graph, root = case
    try:
        res = run(graph, root)
    except DependencyCycleError as err:
        assert err.path[0] == err.path[-1]
        assert all("@" in node for node in err.path)
        return
    except ResolutionError:
        return
    check_sound(graph, root, res)
    assert find_cycle(res) == []


@SETTINGS
@given(graphs(), st.sampled_from(["1.3.0", "2.5.0", "3.0.0"]), st.booleans())
def test_a_lock_keeps_the_result_stable(case: Any, newer: str, fast: bool) -> None:
    graph, root = case
    try:
        first = run(graph, root, fast=fast)
    except ResolutionError:
        return
    locked = first.versions()
    assert run(graph, root, locked, fast=fast) == first
    # New releases appear everywhere: the lock still wins, on either path.
    grown = {name: {**versions, newer: {}} for name, versions in graph.items()}
    assert run(grown, root, locked, fast=fast) == first
    assert run(grown, root, locked, fast=not fast) == first
    # Without the lock the resolver may move, but stays sound.
    check_sound(grown, root, run(grown, root))
