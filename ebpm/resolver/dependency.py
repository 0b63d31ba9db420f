"""Dependency declarations of `[dependencies]` (ebpm.toml or a config blob), parsed and checked.

Five spellings:

    name = "^1.2"                                   # registry package <default registry>/name
    name = { ref = "ghcr.io/org/repo", version = "~1.0" }
    name = { url = "https://host/x.bpf.o", sha256 = "<64 hex>" }
    name = { path = "../x" }                         # a local package directory (ebpm.toml)
    name = { git = "https://host/repo.git", branch = "main", subdir = "tools/x" }  # or tag, rev

Registry and git dependencies may say `private = true`: that copy (and what it pulls in) is
resolved apart from the rest of the graph, so two packages may use different majors of it.

A short name resolves against `default_registry` (for a project: `ebpm.config.default_registry()`,
i.e. $EBPM_REGISTRY; for a published package: the registry it was pulled from) with
repository = name.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from typing import Any

from ebpm.canonical import canonical_json
from ebpm.config import is_registry_host
from ebpm.digests import sha256_digest
from ebpm.errors import ManifestError
from ebpm.package import validate_name
from ebpm.record import record
from ebpm.resolver.ranges import Range, parse_range

__all__ = [
    "RegistryDependency",
    "UrlDependency",
    "PathDependency",
    "GitDependency",
    "Dependency",
    "parse_dependencies",
    "parse_dependency",
    "spec_hash",
]

_SHA256_RE = re.compile(r"[a-f0-9]{64}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_GIT_SCHEMES = ("https://", "http://", "git://", "ssh://", "file://")
_GIT_REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]*")
_GIT_REV_RE = re.compile(r"[a-f0-9]{7,40}")


@record
class RegistryDependency:
    """`name` wants a version of the OCI repository `package` (registry/repository) in `range`."""

    name: str
    package: str
    range: Range
    private: bool = False

    @property
    def registry(self) -> str:
        return self.package.split("/", 1)[0]

    @property
    def repository(self) -> str:
        return self.package.split("/", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.package, "version": self.range.normalized()}
        if self.private:
            out["private"] = True
        return out


@record
class UrlDependency:
    """`name` is a single `.bpf.o` fetched from `url`, pinned by its sha256 (hex)."""

    name: str
    url: str
    sha256: str

    @property
    def package(self) -> str:
        return f"url:{self.url}"

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "url": self.url}


@record
class PathDependency:
    """`name` is the local package directory `path` (relative to the declaring ebpm.toml)."""

    name: str
    path: str

    @property
    def package(self) -> str:
        return f"path:{self.path}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path}


@record
class GitDependency:
    """`name` is the package at `subdir` of the git repository `git`, at a branch, tag or rev.

    Its id names the repository and the ref the way cargo does (`git+URL?branch=main`), so one
    repository followed at two refs is two packages; the lock pins the commit.
    """

    name: str
    git: str
    ref_kind: str  # "branch" | "tag" | "rev" ("branch" with ref "" means the remote's HEAD)
    ref: str
    subdir: str = ""
    private: bool = False

    @property
    def package(self) -> str:
        query = f"{self.ref_kind}={self.ref}" if self.ref else ""
        if self.subdir:
            query = f"{query}&subdir={self.subdir}" if query else f"subdir={self.subdir}"
        return f"git+{self.git}" + (f"?{query}" if query else "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"git": self.git}
        if self.ref:
            out[self.ref_kind] = self.ref
        if self.subdir:
            out["subdir"] = self.subdir
        if self.private:
            out["private"] = True
        return out


Dependency = RegistryDependency | UrlDependency | PathDependency | GitDependency


def _package_id(ref: str, where: str) -> str:
    """Check `registry/repository` (no tag, no digest) and return it."""
    registry, sep, repository = ref.partition("/")
    looks_like_host = ("." in registry or ":" in registry or registry == "localhost"
                       or registry.startswith("["))
    if not sep or not looks_like_host or not _REPO_RE.fullmatch(repository):
        raise ManifestError(
            f"{where}: ref {ref!r} is not registry/repository",
            hint="write it like ghcr.io/org/tool (the version range goes in `version`)",
        )
    if not is_registry_host(registry):
        raise ManifestError(
            f"{where}: ref {ref!r}: bad registry {registry!r}",
            hint="a registry is HOST[:PORT] (a port from 1 to 65535), e.g. ghcr.io or "
                 "localhost:5000",
        )
    return ref


def parse_dependency(
    name: str, value: Any, *, default_registry: str, where: str = "dependencies"
) -> Dependency:
    """Parse one `[dependencies]` entry; raises ManifestError saying what is wrong."""
    here = f"{where}.{name}"
    validate_name(name, where=f"{where}: dependency name")
    if isinstance(value, str):
        return RegistryDependency(name, f"{default_registry}/{name}", _range(value, here))
    if not isinstance(value, Mapping):
        raise ManifestError(
            f"{here}: expected a version range string or a table, got {type(value).__name__}",
            hint='write name = "^1.0" or name = { ref = "...", version = "..." }',
        )
    keys = set(value)
    kinds = keys & {"ref", "url", "path", "version", "git"}
    private = value.get("private", False)
    if not isinstance(private, bool):
        raise ManifestError(f"{here}: private must be true or false, got {private!r}")
    if private and not keys & {"ref", "version", "git"}:
        raise ManifestError(
            f"{here}: only registry and git dependencies can be private",
            hint="remove `private`, or depend on a registry package or a git repository",
        )
    if "git" in keys:
        _only(keys, {"git", "branch", "tag", "rev", "subdir", "private"}, here)
        return _git(name, value, private, here)
    if "url" in keys:
        _only(keys, {"url", "sha256"}, here)
        url, sha = value.get("url"), value.get("sha256")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise ManifestError(f"{here}: url must be an http(s) URL, got {url!r}")
        if sha is None:
            raise ManifestError(
                f"{here}: a url dependency needs sha256",
                hint="add sha256 = \"<hex>\" (sha256sum of the file)",
            )
        if not isinstance(sha, str) or not _SHA256_RE.fullmatch(sha.removeprefix("sha256:")):
            raise ManifestError(f"{here}: sha256 must be 64 lowercase hex digits, got {sha!r}")
        return UrlDependency(name, url, sha.removeprefix("sha256:"))
    if "path" in keys:
        _only(keys, {"path"}, here)
        path = value["path"]
        if not isinstance(path, str) or not path:
            raise ManifestError(f"{here}: path must be a non-empty string")
        return PathDependency(name, path)
    if not kinds:
        unknown = sorted(keys - {"private"})
        raise ManifestError(
            f"{here}: say where the package is: `version`, `ref`, `url`, `path` or `git`"
            + (f" (unexpected key(s) {', '.join(unknown)})" if unknown else ""),
            hint='e.g. name = { version = "^1" } or name = { path = "../x" }',
        )
    _only(keys, {"ref", "version", "private"}, here)
    ref = value.get("ref", f"{default_registry}/{name}")
    if not isinstance(ref, str):
        raise ManifestError(f"{here}: ref must be a string")
    version = value.get("version", "*")
    return RegistryDependency(name, _package_id(ref, here), _range(version, here), private)


def _git(name: str, value: Mapping[str, Any], private: bool, here: str) -> GitDependency:
    url = value["git"]
    if not isinstance(url, str) or not url.startswith(_GIT_SCHEMES) or any(
        c in url for c in " ?#\n"
    ):
        raise ManifestError(
            f"{here}: git must be a repository URL, got {url!r}",
            hint="write git = \"https://host/org/repo.git\" (or ssh://, git://, file://)",
        )
    refs = [k for k in ("branch", "tag", "rev") if k in value]
    if len(refs) > 1:
        raise ManifestError(
            f"{here}: give one of branch, tag or rev, not {' and '.join(refs)}"
        )
    kind = refs[0] if refs else "branch"
    ref = value.get(kind, "")
    if not isinstance(ref, str) or (refs and not ref):
        raise ManifestError(f"{here}: {kind} must be a non-empty string")
    if kind == "rev" and not _GIT_REV_RE.fullmatch(ref):
        raise ManifestError(
            f"{here}: rev must be a commit id (7 to 40 lowercase hex digits), got {ref!r}",
            hint="use tag = or branch = for names",
        )
    if ref and (not _GIT_REF_RE.fullmatch(ref) or ".." in ref or ref.endswith((".lock", "/"))):
        raise ManifestError(f"{here}: {kind} {ref!r} is not a valid git ref name")
    subdir = value.get("subdir", "")
    if not isinstance(subdir, str):
        raise ManifestError(f"{here}: subdir must be a string")
    subdir = posixpath.normpath(subdir).strip("/") if subdir else ""
    if subdir == ".":
        subdir = ""
    if subdir.startswith("..") or posixpath.isabs(value.get("subdir", "")) or "&" in subdir:
        raise ManifestError(
            f"{here}: subdir {value.get('subdir')!r} must stay inside the repository",
            hint="write it relative to the repository root, e.g. subdir = \"tools/x\"",
        )
    return GitDependency(name, url.rstrip("/"), kind, ref, subdir, private)


def _only(keys: set[str], allowed: set[str], where: str) -> None:
    extra = sorted(keys - allowed)
    if extra:
        raise ManifestError(
            f"{where}: unexpected key(s) {', '.join(extra)}",
            hint=f"this kind of dependency takes {', '.join(sorted(allowed))}",
        )


def _range(value: Any, where: str) -> Range:
    if not isinstance(value, str):
        raise ManifestError(f"{where}: version range must be a string, got {value!r}")
    try:
        return parse_range(value)
    except ManifestError as err:
        raise ManifestError(f"{where}: {err.message}", hint=err.hint) from err


def parse_dependencies(
    raw: Any, *, default_registry: str, where: str = "dependencies"
) -> tuple[Dependency, ...]:
    """Parse a whole `[dependencies]` table, sorted by name."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ManifestError(f"{where}: expected a table of dependencies")
    deps = tuple(
        parse_dependency(name, raw[name], default_registry=default_registry, where=where)
        for name in sorted(raw)
    )
    seen: dict[str, str] = {}
    for dep in deps:
        if dep.package in seen:
            raise ManifestError(
                f"{where}: {seen[dep.package]} and {dep.name} both name {dep.package}",
                hint="declare each package once",
            )
        seen[dep.package] = dep.name
    return deps


def spec_hash(deps: tuple[Dependency, ...]) -> str:
    """sha256 of the canonical form of the dependencies (what a lockfile was made from)."""
    body = canonical_json({d.name: d.to_dict() for d in deps})
    return sha256_digest(body)
