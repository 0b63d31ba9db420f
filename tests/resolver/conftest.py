"""Helpers for the resolver tests: data-file cases on an in-memory source."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ebpm.resolver.source import MemorySource

REGISTRY = "localhost:5000"
CASES = Path(__file__).parent / "cases"


def full(name: str) -> str:
    """Short names in case files live in REGISTRY; names with a '/' are already ids; a private
    copy's key is written `owner > name` (`<root>` for the project)."""
    if " > " in name:
        return " > ".join(full(part) for part in name.split(" > "))
    if "/" in name or name.startswith(("url:", "path:", "git+")) or name == "<root>":
        return name
    return f"{REGISTRY}/{name}"


class CaseSource(MemorySource):
    """MemorySource whose tag lists may differ from the versions it holds (as registries do)."""

    def __init__(
        self, graph: dict[str, Any], tags: dict[str, list[str]], *,
        digests: dict[str, dict[str, str]] | None = None, git: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(graph, digests=digests, git=git)
        self.tags = tags

    def versions(self, package_id: str) -> list[str]:
        if package_id in self.tags:
            return list(self.tags[package_id])
        return super().versions(package_id)


def load_case(path: Path) -> dict[str, Any]:
    case = tomllib.loads(path.read_text())
    graph = {full(k): v for k, v in case.get("graph", {}).items()}
    n = case.get("chain", 0)
    for i in range(n):
        nxt = {f"p{i + 1}": "^1"} if i + 1 < n else {}
        graph[full(f"p{i}")] = {"1.0.0": nxt, "1.1.0": nxt}
    case["source"] = CaseSource(
        graph, {full(k): v for k, v in case.get("tags", {}).items()},
        digests={full(k): v for k, v in case.get("digests", {}).items()},
        git=case.get("git", {}),
    )
    return case
