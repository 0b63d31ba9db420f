"""Resolution cases from data files: tests/resolver/cases/*.toml (graph, root, expectation)."""

from __future__ import annotations

from pathlib import Path

import pytest

import ebpm.errors
from ebpm.resolver.dependency import parse_dependencies
from ebpm.resolver.resolve import resolve
from tests.resolver.conftest import CASES, REGISTRY, full, load_case

CASE_FILES = sorted(CASES.glob("*.toml"))


def test_there_are_cases() -> None:
    assert len(CASE_FILES) >= 20


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "resolvelib"])
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_case(path: Path, fast: bool) -> None:
    case = load_case(path)
    deps = parse_dependencies(case["root"], default_registry=REGISTRY)
    expect = case["expect"]
    locked = {full(k): v for k, v in case.get("locked", {}).items()}
    root_id = full(case["root_id"]) if "root_id" in case else ""

    notes: list[str] = []

    def run() -> dict[str, str]:
        res = resolve(
            deps, case["source"], locked=locked, root="app@0.1.0", root_id=root_id,
            registry=REGISTRY, fast=fast,
        )
        notes.extend(str(e) for e in res.equivalences)
        return res.versions()

    if "error" in expect:
        cls = getattr(ebpm.errors, expect["error"])
        with pytest.raises(cls) as info:
            run()
        assert type(info.value) is cls
        if "message" in expect:
            assert info.value.message == expect["message"]
        for part in expect.get("contains", []):
            assert part in info.value.message
        assert info.value.hint
    elif "count" in expect:
        got = run()
        assert len(got) == expect["count"]
        assert set(got.values()) == {"1.1.0"}
    else:
        assert run() == {full(k): v for k, v in expect["versions"].items()}
        assert notes == expect.get("notes", [])
