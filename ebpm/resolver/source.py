"""The interface through which the resolver asks about packages: tag lists and dependencies.

A package is identified by `registry/repository` (a string). A use case implements `Source`
from the registry and the local store; tests and benchmarks use `MemorySource`. Two questions
are optional: `content_digest` (version equivalence: without it no two versions are the same
package) and `git` (git dependencies: without it they cannot be resolved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ebpm.errors import NotFoundError, ResolutionError
from ebpm.versions import tag_from_version

if TYPE_CHECKING:
    from ebpm.resolver.dependency import GitDependency

__all__ = ["Source", "MemorySource", "GitPackage"]


@dataclass(frozen=True)
class GitPackage:
    """A git dependency at one commit: what its ebpm.toml says there, and its content digest."""

    commit: str  # the full commit id
    version: str  # [package] version of the ebpm.toml at that commit
    dependencies: Mapping[str, Any] = field(default_factory=dict)  # its raw [dependencies]
    tree: str = ""  # sha256:… of the package directory's files (see ebpm.deps.git)


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


def content_digest(source: Any, package_id: str, version: str) -> str:
    """What `source` says the content of a version is, apart from its version ('' = unknown).

    Two versions with the same non-empty content digest are the same package to the resolver.
    """
    ask = getattr(source, "content_digest", None)
    return str(ask(package_id, version)) if ask is not None else ""


def git_package(source: Any, dep: GitDependency, locked_commit: str) -> GitPackage:
    """`source.git(dep, locked_commit)`: the locked commit when given, else the ref's head."""
    ask = getattr(source, "git", None)
    if ask is None:
        raise ResolutionError(
            f"{dep.name}: git dependencies cannot be resolved here ({dep.git})",
            hint="resolve with `ebpm lock` in the project directory",
        )
    found: GitPackage = ask(dep, locked_commit)
    return found


class MemorySource:
    """A `Source` over a dict: {package_id: {version: {dep_name: spec, ...}}}.

    `digests` ({package_id: {version: digest}}) gives content digests; `git`
    ({url: {"refs": {ref: commit}, "commits": {commit: {"version": …, "dependencies": {…}}}}})
    serves git dependencies (the subdir is ignored).
    """

    def __init__(
        self,
        graph: Mapping[str, Mapping[str, Mapping[str, Any]]],
        *,
        digests: Mapping[str, Mapping[str, str]] | None = None,
        git: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.graph = graph
        self.digests = digests or {}
        self.git_repos = git or {}
        self.calls = 0

    def versions(self, package_id: str) -> list[str]:
        self.calls += 1
        try:
            return [tag_from_version(v) for v in self.graph[package_id]]
        except KeyError:
            raise NotFoundError(f"{package_id}: repository not found", status=404) from None

    def metadata(self, package_id: str, version: str) -> Mapping[str, Any]:
        self.calls += 1
        try:
            return self.graph[package_id][version]
        except KeyError:
            raise NotFoundError(f"{package_id}:{version}: manifest unknown", status=404) from None

    def content_digest(self, package_id: str, version: str) -> str:
        self.calls += 1
        return self.digests.get(package_id, {}).get(version, "")

    def git(self, dep: GitDependency, locked_commit: str) -> GitPackage:
        self.calls += 1
        repo = self.git_repos.get(dep.git)
        if repo is None:
            raise NotFoundError(f"{dep.git}: repository not found", status=404)
        commit = locked_commit or repo["refs"].get(dep.ref or "HEAD", "")
        if commit not in repo["commits"]:
            raise NotFoundError(
                f"{dep.git}: no {dep.ref_kind} {dep.ref!r}", status=404,
                hint="check the branch, tag or rev in ebpm.toml",
            )
        found = repo["commits"][commit]
        return GitPackage(commit, found["version"], found.get("dependencies", {}))
