"""The interface through which the resolver asks about packages: tag lists and dependencies.

A package is identified by `registry/repository` (a string). A use case implements `Source`
from the registry and the local store; tests and benchmarks use `MemorySource`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ebpm.errors import NotFoundError

__all__ = ["Source", "MemorySource"]


@runtime_checkable
class Source(Protocol):
    """What the resolver needs to know about published packages."""

    def versions(self, package_id: str) -> list[str]:
        """The tags of `package_id` in any order; non-semver tags are ignored, `_` means `+`.

        Raises `ebpm.errors.NotFoundError` when the repository does not exist (the resolver
        then explains which chain of requirements led to it); any other error (offline,
        unreachable, auth) propagates unchanged.
        """
        ...

    def metadata(self, package_id: str, version: str) -> Mapping[str, Any]:
        """The raw `dependencies` table of the config blob of `package_id` at `version`."""
        ...


class MemorySource:
    """A `Source` over a dict: {package_id: {version: {dep_name: spec, ...}}}."""

    def __init__(self, graph: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
        self.graph = graph
        self.calls = 0

    def versions(self, package_id: str) -> list[str]:
        self.calls += 1
        try:
            return [v.replace("+", "_") for v in self.graph[package_id]]
        except KeyError:
            raise NotFoundError(f"{package_id}: repository not found", status=404) from None

    def metadata(self, package_id: str, version: str) -> Mapping[str, Any]:
        self.calls += 1
        try:
            return self.graph[package_id][version]
        except KeyError:
            raise NotFoundError(f"{package_id}:{version}: manifest unknown", status=404) from None
