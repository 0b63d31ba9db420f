"""`ebpm.lock`: the resolved graph pinned to digests, as canonical JSON in a stable order.

    {
      "lock_version": 1,
      "spec_hash": "sha256:...",          # of the [dependencies] it was made from
      "dependencies": {"name": "registry/repo", ...},   # the project's direct dependencies
      "packages": [                        # sorted by package id
        {"package": "localhost:5000/a", "kind": "registry", "version": "1.2.0", "tag": "1.2.0",
         "manifest_digest": "sha256:...", "config_digest": "sha256:...", "layers": ["sha256:..."],
         "dependencies": {"b": "localhost:5000/b"},
         "signature_digest": "", "key_id": ""},
        {"package": "url:https://...", "kind": "url", "url": "https://...", "sha256": "<hex>", ...},
        {"package": "path:../x", "kind": "path", "path": "../x", "version": "0.1.0", ...},
        {"package": "git+https://host/r.git?branch=main", "kind": "git", "url": "https://host/r.git",
         "subdir": "", "commit": "<40 hex>", "tree": "sha256:...", "version": "0.3.0",
         "manifest_digest": "sha256:...", "config_digest": "sha256:...", "layers": [...], ...},
        {"package": "localhost:5000/x", "scope": "localhost:5000/a", ...}   # a's private copy
      ]
    }

Entries are identified by their key: the package id, or `SCOPE > ID` for a private copy
(`scope` is the key of the package that declared it private, `<root>` for the project), and
`dependencies` map declared names to keys. A private copy is listed right after its owner.

Keys are sorted, the text is indented by 2 and ends with a newline, so the same graph always
gives the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import LockfileError, ManifestError
from ebpm.package import LOCK_FILE
from ebpm.record import fields, record, replace
from ebpm.resolver.dependency import parse_dependencies, spec_hash
from ebpm.versions import is_version, tag_from_version

if TYPE_CHECKING:
    from ebpm.package import ProjectManifest

__all__ = ["LOCK_FILE", "LOCK_VERSION", "LockEntry", "Lockfile", "SCOPE_SEP"]

LOCK_VERSION = 1
_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}")
_HEX_RE = re.compile(r"[a-f0-9]{64}")
_KINDS = ("registry", "url", "path", "git")
_COMMIT_RE = re.compile(r"[a-f0-9]{40}")
SCOPE_SEP = " > "  # as in ebpm.resolver.provider (not imported: the lockfile stays a leaf)


def _order(key: str) -> tuple[str, ...]:
    """Sort keys so that a private copy follows its owner (`a`, `a > x`, `a-b`)."""
    return tuple(key.split(SCOPE_SEP))
_HINT = "run `ebpm lock` to write it again"


@record
class LockEntry:
    """One pinned package. Digests stay empty until a use case fills them from the registry."""

    package: str
    version: str = ""
    kind: str = "registry"
    tag: str = ""
    manifest_digest: str = ""
    config_digest: str = ""
    layers: tuple[str, ...] = ()
    dependencies: tuple[tuple[str, str], ...] = ()  # (declared name, package id), sorted
    signature_digest: str = ""
    key_id: str = ""
    url: str = ""
    sha256: str = ""
    path: str = ""
    commit: str = ""  # git: the pinned commit
    tree: str = ""  # git, path: sha256 of the package directory's files (ebpm.deps.git)
    subdir: str = ""  # git: the package's directory in the repository
    scope: str = ""  # a private copy: the key of the package it belongs to

    @property
    def key(self) -> str:
        """How the graph names this entry: the package id, or `SCOPE > ID`."""
        return f"{self.scope}{SCOPE_SEP}{self.package}" if self.scope else self.package

    @property
    def registry(self) -> str:
        return self.package.split("/", 1)[0] if self.kind == "registry" else ""

    @property
    def repository(self) -> str:
        return self.package.split("/", 1)[1] if self.kind == "registry" else ""

    @property
    def reference(self) -> str:
        """registry/repository@digest (or :tag while the digest is unknown)."""
        if self.manifest_digest:
            return f"{self.package}@{self.manifest_digest}"
        return f"{self.package}:{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"package": self.package, "kind": self.kind}
        if self.kind == "registry":
            out.update(
                version=self.version,
                tag=self.tag,
                manifest_digest=self.manifest_digest,
                config_digest=self.config_digest,
                layers=list(self.layers),
                signature_digest=self.signature_digest,
                key_id=self.key_id,
            )
        elif self.kind == "url":
            out.update(url=self.url, sha256=self.sha256)
        elif self.kind == "git":
            out.update(
                url=self.url, subdir=self.subdir, commit=self.commit, tree=self.tree,
                version=self.version, manifest_digest=self.manifest_digest,
                config_digest=self.config_digest, layers=list(self.layers),
            )
        else:
            out.update(path=self.path, version=self.version)
            if self.tree:
                out["tree"] = self.tree
        out["dependencies"] = dict(self.dependencies)
        if self.scope:
            out["scope"] = self.scope
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> LockEntry:
        if not isinstance(data, dict):
            raise LockfileError(f"{where}: expected an object", hint=_HINT)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise LockfileError(f"{where}: unknown field(s) {', '.join(unknown)}", hint=_HINT)
        values = dict(data)
        for key in known - {"layers", "dependencies"}:
            if key in values and not isinstance(values[key], str):
                raise LockfileError(f"{where}: {key} must be a string", hint=_HINT)
        layers = values.get("layers", [])
        if not isinstance(layers, list) or not all(isinstance(x, str) for x in layers):
            raise LockfileError(f"{where}: layers must be a list of digests", hint=_HINT)
        values["layers"] = tuple(layers)
        deps = values.get("dependencies", {})
        if not isinstance(deps, dict) or not all(isinstance(v, str) for v in deps.values()):
            raise LockfileError(f"{where}: dependencies must map names to package ids", hint=_HINT)
        values["dependencies"] = tuple(sorted(deps.items()))
        if not isinstance(values.get("package"), str) or not values["package"]:
            raise LockfileError(f"{where}: package is missing", hint=_HINT)
        entry = cls(**values)
        entry.check(where)
        return entry

    def check(self, where: str) -> None:
        """Raise LockfileError when a field is malformed."""
        if self.kind not in _KINDS:
            raise LockfileError(f"{where}: unknown kind {self.kind!r}", hint=_HINT)
        if self.kind == "registry":
            registry, sep, repository = self.package.partition("/")
            if not sep or not repository:
                raise LockfileError(f"{where}: package must be registry/repository", hint=_HINT)
            if not is_version(self.version):
                raise LockfileError(f"{where}: version {self.version!r} is not semver", hint=_HINT)
            if self.tag != tag_from_version(self.version):
                raise LockfileError(
                    f"{where}: tag {self.tag!r} does not match version {self.version}", hint=_HINT
                )
            _check_digests(where, [("manifest_digest", self.manifest_digest),
                                   ("config_digest", self.config_digest),
                                   ("signature_digest", self.signature_digest),
                                   *(("layers", d) for d in self.layers)])
        elif self.kind == "url":
            if self.package != f"url:{self.url}" or not _HEX_RE.fullmatch(self.sha256):
                raise LockfileError(f"{where}: url entries need url and sha256", hint=_HINT)
        elif self.kind == "git":
            if not self.package.startswith(f"git+{self.url}") or not self.url:
                raise LockfileError(f"{where}: git entries need the repository url", hint=_HINT)
            if not _COMMIT_RE.fullmatch(self.commit):
                raise LockfileError(f"{where}: commit {self.commit!r} is not a commit id",
                                    hint=_HINT)
            if not is_version(self.version):
                raise LockfileError(f"{where}: version {self.version!r} is not semver", hint=_HINT)
            _check_digests(where, [("tree", self.tree),
                                   ("manifest_digest", self.manifest_digest),
                                   ("config_digest", self.config_digest),
                                   *(("layers", d) for d in self.layers)])
        elif self.package != f"path:{self.path}" or not self.path:
            raise LockfileError(f"{where}: path entries need path", hint=_HINT)
        else:
            _check_digests(where, [("tree", self.tree)])


@record
class Lockfile:
    """A whole ebpm.lock: what it was made from, the direct dependencies, every package."""

    spec_hash: str
    dependencies: tuple[tuple[str, str], ...]  # (declared name, package id), sorted
    packages: tuple[LockEntry, ...]  # sorted by package id
    lock_version: int = LOCK_VERSION

    # -- building ---------------------------------------------------------------------

    @classmethod
    def from_resolution(cls, resolution: Any, *, spec_hash: str) -> Lockfile:
        """Entries for a `Resolution`, without digests (a use case adds them)."""
        entries = []
        for p in resolution.packages:
            scope, _, pid = p.package.rpartition(SCOPE_SEP)
            url, subdir = p.url, ""
            if p.kind == "git":
                url, subdir = _git_parts(pid)
            entries.append(LockEntry(
                package=pid,
                version=p.version,
                kind=p.kind,
                tag=tag_from_version(p.version) if p.kind == "registry" else "",
                dependencies=tuple(p.dependencies),
                url=url,
                sha256=p.sha256,
                path=p.path,
                commit=p.commit,
                tree=p.tree,
                subdir=subdir,
                scope=scope,
            ))
        return cls.create(spec_hash, resolution.roots, entries)

    @classmethod
    def create(
        cls, spec_hash: str, dependencies: Any, packages: Any
    ) -> Lockfile:
        """A lockfile in canonical order, checked."""
        lock = cls(
            spec_hash=spec_hash,
            dependencies=tuple(sorted(dict(dependencies).items())),
            packages=tuple(sorted(packages, key=lambda e: _order(e.key))),
        )
        lock.check()
        return lock

    def with_entry(self, entry: LockEntry) -> Lockfile:
        """This lockfile with `entry` replacing the one of the same package."""
        others = [e for e in self.packages if e.key != entry.key]
        return replace(
            self, packages=tuple(sorted([*others, entry], key=lambda e: _order(e.key)))
        )

    # -- reading ----------------------------------------------------------------------

    def get(self, key: str) -> LockEntry | None:
        """The entry of a key (a package id, or `SCOPE > ID` for a private copy)."""
        return next((e for e in self.packages if e.key == key), None)

    def locked_versions(self) -> dict[str, str]:
        """{key: version} of the registry entries and {key: commit} of the git ones (what the
        resolver prefers)."""
        out = {e.key: e.version for e in self.packages if e.kind == "registry"}
        out.update({e.key: e.commit for e in self.packages if e.kind == "git"})
        return out

    def is_stale(self, manifest: ProjectManifest, *, default_registry: str | None = None
                 ) -> bool:
        """True when `manifest` (ebpm.toml) declares other dependencies than the lock's."""
        if default_registry is None:
            from ebpm.config import default_registry as _default

            default_registry = _default()
        try:
            deps = parse_dependencies(
                manifest.dependencies, default_registry=default_registry
            )
        except ManifestError:
            return True
        return spec_hash(deps) != self.spec_hash

    def missing_digests(self) -> list[str]:
        """Registry packages whose manifest or config digest is not pinned yet."""
        return [
            e.key
            for e in self.packages
            if e.kind in ("registry", "git") and not (e.manifest_digest and e.config_digest)
        ]

    def check(self) -> None:
        """Raise LockfileError unless every entry is well formed and the graph is closed."""
        if self.lock_version != LOCK_VERSION:
            raise LockfileError(
                f"{LOCK_FILE}: lock_version {self.lock_version} is not supported "
                f"(this ebpm reads {LOCK_VERSION})",
                hint="upgrade ebpm, or run `ebpm lock` to write it again",
            )
        if not _DIGEST_RE.fullmatch(self.spec_hash):
            raise LockfileError(f"{LOCK_FILE}: spec_hash {self.spec_hash!r} is invalid", hint=_HINT)
        ids = [e.key for e in self.packages]
        if len(ids) != len(set(ids)):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise LockfileError(f"{LOCK_FILE}: {dup[0]} is listed twice", hint=_HINT)
        known = set(ids)
        for name, pid in self.dependencies:
            if pid not in known:
                raise LockfileError(
                    f"{LOCK_FILE}: dependency {name} ({pid}) has no entry", hint=_HINT
                )
        for entry in self.packages:
            entry.check(f"{LOCK_FILE}: {entry.key}")
            if entry.scope and entry.scope != "<root>" and entry.scope not in known:
                raise LockfileError(
                    f"{LOCK_FILE}: {entry.key} belongs to {entry.scope}, which has no entry",
                    hint=_HINT,
                )
            for name, pid in entry.dependencies:
                if pid not in known:
                    raise LockfileError(
                        f"{LOCK_FILE}: {entry.key} depends on {name} ({pid}), which has "
                        "no entry",
                        hint=_HINT,
                    )

    # -- (de)serialization ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "lock_version": self.lock_version,
            "spec_hash": self.spec_hash,
            "dependencies": dict(self.dependencies),
            "packages": [e.to_dict() for e in self.packages],
        }

    def dumps(self) -> bytes:
        """The canonical text: sorted keys, 2-space indent, trailing newline, UTF-8."""
        text = json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False)
        return (text + "\n").encode()

    @classmethod
    def loads(cls, data: bytes | str) -> Lockfile:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise LockfileError(f"{LOCK_FILE}: not valid JSON: {err}", hint=_HINT) from err
        if not isinstance(raw, Mapping):
            raise LockfileError(f"{LOCK_FILE}: expected a JSON object", hint=_HINT)
        unknown = sorted(set(raw) - {"lock_version", "spec_hash", "dependencies", "packages"})
        if unknown:
            raise LockfileError(f"{LOCK_FILE}: unknown field(s) {', '.join(unknown)}", hint=_HINT)
        if "lock_version" not in raw:
            raise LockfileError(f"{LOCK_FILE}: lock_version is missing", hint=_HINT)
        version = raw["lock_version"]
        if not isinstance(version, int) or isinstance(version, bool):
            raise LockfileError(
                f"{LOCK_FILE}: lock_version must be a number, not {json.dumps(version)} "
                f"(this ebpm reads {LOCK_VERSION})", hint=_HINT)
        deps = raw.get("dependencies", {})
        if not isinstance(deps, dict) or not all(isinstance(v, str) for v in deps.values()):
            raise LockfileError(f"{LOCK_FILE}: dependencies must map names to ids", hint=_HINT)
        packages = raw.get("packages", [])
        if not isinstance(packages, list):
            raise LockfileError(f"{LOCK_FILE}: packages must be a list", hint=_HINT)
        entries = tuple(
            LockEntry.from_dict(p, f"{LOCK_FILE}: packages[{i}]") for i, p in enumerate(packages)
        )
        spec = raw.get("spec_hash")
        lock = cls(
            spec_hash=spec if isinstance(spec, str) else "",
            dependencies=tuple(sorted(deps.items())),
            packages=tuple(sorted(entries, key=lambda e: _order(e.key))),
            lock_version=version,
        )
        lock.check()
        return lock

    @classmethod
    def load(cls, path: str | Path) -> Lockfile:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise LockfileError(
                f"{path}: no lockfile", hint="run `ebpm lock` to resolve and write one"
            ) from err
        try:
            return cls.loads(data)
        except LockfileError as err:
            raise LockfileError(
                err.message.replace(LOCK_FILE, str(path), 1), hint=err.hint
            ) from err

    def dump(self, path: str | Path) -> None:
        """Write atomically (temp file, fsync, rename) next to `path`."""
        from ebpm.files import atomic_write

        atomic_write(path, self.dumps())


def _check_digests(where: str, named: list[tuple[str, str]]) -> None:
    """Every non-empty (field, digest) must be sha256:<64 hex>."""
    for name, digest in named:
        if digest and not _DIGEST_RE.fullmatch(digest):
            raise LockfileError(f"{where}: {name} {digest!r} is not a digest", hint=_HINT)


def _git_parts(package_id: str) -> tuple[str, str]:
    """(url, subdir) of a git package id `git+URL?kind=ref&subdir=DIR`."""
    url, _, query = package_id.removeprefix("git+").partition("?")
    subdir = ""
    for part in query.split("&"):
        if part.startswith("subdir="):
            subdir = part.removeprefix("subdir=")
    return url, subdir
