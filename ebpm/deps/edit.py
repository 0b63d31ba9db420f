"""`ebpm add` and `ebpm remove`: change ebpm.toml's [dependencies] in place, keeping the user's
comments and layout, and lock the result before either file is written.

The edit is made on a round-trip TOML document (tomlkit), checked to change nothing but the
entries asked for, then locked as `ebpm lock` would lock the edited file (only the added
packages are unlocked, as `ebpm update NAME` does); ebpm.toml and ebpm.lock are written only
once that succeeded, each atomically, and ebpm.toml is put back when ebpm.lock cannot be.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.deps.project import DEFAULT_JOBS, Project, edited_project, load_project
from ebpm.errors import EbpmError, UsageError
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import record

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.deps.lock import LockResult
    from ebpm.oci.layout import Store

__all__ = ["Request", "Change", "EditResult", "add", "remove"]

_BOM = "\ufeff".encode()


@record
class Request:
    """One dependency `ebpm add` is asked for.

    `spec` is `NAME[@RANGE]` or `[REGISTRY/]REPOSITORY[@RANGE]` for a registry package (no
    range: a caret range from the newest release); with `path`, `git` or `url` it is the
    dependency's name alone (for `path` optional: the package's own name). `rename` names the
    dependency when it should not be called after the repository or package.
    """

    spec: str = ""
    path: str = ""
    git: str = ""
    branch: str = ""
    tag: str = ""
    rev: str = ""
    subdir: str = ""
    url: str = ""
    sha256: str = ""
    private: bool = False
    rename: str = ""


@record
class Change:
    """What happened to one entry of [dependencies]."""

    action: str  # "added" | "replaced" | "unchanged" | "removed"
    name: str
    package: str  # its id: registry/repository, path:DIR, git+URL?..., url:URL
    requirement: Any  # the TOML value now (a range string or a table); None when removed
    previous: Any  # the value before; None when added


@record
class EditResult:
    changes: tuple[Change, ...]
    manifest: Path  # ebpm.toml
    manifest_written: bool
    lock: LockResult  # the lock of the edited ebpm.toml (written unless dry_run)
    dry_run: bool


def add(
    directory: str | Path,
    requests: tuple[Request, ...],
    *,
    dry_run: bool = False,
    access: RegistryAccess | None = None,
    allow_unsigned: bool = False,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
) -> EditResult:
    """Add (or replace) the dependencies `requests` name in the project's ebpm.toml and lock.

    Nothing is written when a request is wrong, a package does not exist or the graph does not
    resolve; `dry_run` resolves and fetches as `ebpm lock` would, and writes neither file.
    """
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store

    project = load_project(directory)
    store = store or Store()
    access = access or RegistryAccess.from_env()
    wanted: dict[str, Any] = {}
    for request in requests:
        name, value = _entry(project, request, store=store, access=access)
        if name in wanted:
            raise UsageError(f"add: {name} is asked for twice",
                             hint="give each dependency once")
        wanted[name] = value
    if not wanted:
        raise UsageError("add: name a dependency to add",
                         hint="e.g. ebpm add opensnoop, ebpm add opensnoop@^1.2, "
                              "ebpm add --path ../tool")
    raw, doc, table = _document(project)
    before = dict(project.manifest.dependencies)
    after = dict(before)
    for name, value in wanted.items():
        after[name] = _put(table, name, value, before.get(name))
    edited = _edited(project, raw, doc, before, after)
    result = _lock(project, edited, unlock=set(wanted), access=access,
                   allow_unsigned=allow_unsigned, jobs=jobs, store=store, reporter=reporter)
    ids = {d.name: d.package for d in edited[1].dependencies}
    changes = tuple(
        Change("added" if name not in before else
               "unchanged" if before[name] == after[name] else "replaced",
               name, ids[name], after[name], before.get(name))
        for name in wanted
    )
    return _commit(project, raw, edited[0], result, changes, dry_run=dry_run)


def remove(
    directory: str | Path,
    names: tuple[str, ...],
    *,
    dry_run: bool = False,
    access: RegistryAccess | None = None,
    allow_unsigned: bool = False,
    jobs: int = DEFAULT_JOBS,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
) -> EditResult:
    """Remove the dependencies `names` from ebpm.toml and lock what is left.

    A name ebpm.toml does not declare is a UsageError, and nothing is written.
    """
    project = load_project(directory)
    before = dict(project.manifest.dependencies)
    unknown = [n for n in dict.fromkeys(names) if n not in before]
    if unknown:
        declared = ", ".join(sorted(before))
        raise UsageError(
            f"remove: {', '.join(repr(n) for n in unknown)} "
            f"{'is' if len(unknown) == 1 else 'are'} not a dependency in {project.manifest.file}",
            hint=f"it declares: {declared}" if declared else
            "its [dependencies] is empty (`ebpm rm` removes packages from the local store)",
        )
    if not names:
        raise UsageError("remove: name a dependency to remove", hint="e.g. ebpm remove opensnoop")
    ids = {d.name: d.package for d in project.dependencies}
    raw, doc, table = _document(project)
    after = dict(before)
    for name in dict.fromkeys(names):
        _delete(table, name)
        del after[name]
    edited = _edited(project, raw, doc, before, after)
    result = _lock(project, edited, unlock=set(), access=access,
                   allow_unsigned=allow_unsigned, jobs=jobs, store=store, reporter=reporter)
    changes = tuple(Change("removed", n, ids[n], None, before[n]) for n in dict.fromkeys(names))
    return _commit(project, raw, edited[0], result, changes, dry_run=dry_run)


# -- what the command line asks for -> (name, TOML value) ---------------------------------------

def _entry(project: Project, r: Request, *, store: Store, access: RegistryAccess
           ) -> tuple[str, Any]:
    """The name and the [dependencies] value for `r`, checked by the dependency grammar."""
    from ebpm.errors import ManifestError
    from ebpm.resolver.dependency import parse_dependency

    kinds = [f"--{k}" for k in ("path", "git", "url") if getattr(r, k)]
    if len(kinds) > 1:
        raise UsageError(f"add: give one of --path, --git or --url, not {' and '.join(kinds)}")
    for option, needs in (("branch", "git"), ("tag", "git"), ("rev", "git"), ("subdir", "git"),
                          ("sha256", "url")):
        if getattr(r, option) and not getattr(r, needs):
            raise UsageError(f"add: --{option} is for a --{needs} dependency",
                             hint=f"add --{needs} ..., or leave --{option} out")
    if r.private and (r.path or r.url):
        raise UsageError("add: --private is for registry and git dependencies")
    if kinds and "@" in r.spec:
        raise UsageError(
            f"add: {r.spec}: a {kinds[0][2:]} dependency has no version range",
            hint=f"give the name alone: ebpm add NAME {kinds[0]} ...",
        )
    if r.path:
        name, value = _path_entry(project, r)
    elif r.git:
        name = _named(r, "--git")
        value = {"git": r.git}
        value.update({k: getattr(r, k) for k in ("branch", "tag", "rev", "subdir")
                      if getattr(r, k)})
    elif r.url:
        name = _named(r, "--url")
        if not r.sha256:
            raise UsageError("add: a --url dependency needs --sha256",
                             hint="give --sha256 HEX (sha256sum of the file)")
        value = {"url": r.url, "sha256": r.sha256}
    else:
        name, value = _registry_entry(project, r, store=store, access=access)
    if r.private and isinstance(value, dict):
        value["private"] = True
    try:
        parse_dependency(name, value, default_registry=project.registry)
    except ManifestError as err:
        raise UsageError(err.message, hint=err.hint) from err
    return name, value


def _named(r: Request, option: str) -> str:
    name = r.rename or r.spec
    if not name:
        raise UsageError(f"add: name the {option} dependency",
                         hint=f"ebpm add NAME {option} ...")
    if r.rename and r.spec and r.rename != r.spec:
        raise UsageError(f"add: NAME {r.spec!r} and --rename {r.rename!r} disagree",
                         hint="give one of them")
    return name


def _path_entry(project: Project, r: Request) -> tuple[str, dict[str, Any]]:
    """{path = DIR relative to ebpm.toml}; DIR as given is relative to the working directory,
    as a shell completes it (cargo add --path does the same)."""
    from ebpm.errors import ManifestError
    from ebpm.package import ProjectManifest

    target = os.path.abspath(r.path)
    try:
        package = ProjectManifest.load(target)
    except ManifestError as err:
        raise UsageError(f"add --path {r.path}: {err.message}",
                         hint="a path dependency is a package directory holding ebpm.toml "
                              "(`ebpm init NAME --dir DIR` makes one)") from err
    relative = os.path.relpath(target, os.path.abspath(project.root)).replace(os.sep, "/")
    return r.rename or r.spec or package.name, {"path": relative}


def _registry_entry(project: Project, r: Request, *, store: Store, access: RegistryAccess
                    ) -> tuple[str, Any]:
    from ebpm.oci.reference import parse

    if not r.spec:
        raise UsageError("add: name a package",
                         hint="ebpm add NAME[@RANGE], or --path/--git/--url")
    text, at, wanted = r.spec.rpartition("@") if "@" in r.spec else (r.spec, "", "")
    if wanted.startswith("sha256:"):
        raise UsageError(f"add: {r.spec}: a dependency takes a version range, not a digest",
                         hint="write NAME@RANGE such as opensnoop@^1.2 (ebpm.lock pins the "
                              "digest)")
    if at and not wanted.strip():
        raise UsageError(f"add: {r.spec}: the range after @ is empty",
                         hint="write NAME@RANGE such as opensnoop@^1.2, or NAME alone for "
                              "the newest release")
    if not text:
        raise UsageError(f"add: {r.spec}: no package before the @",
                         hint="write NAME@RANGE such as opensnoop@^1.2")
    ref = parse(text, default_registry=project.registry)
    if ref.tag:
        raise UsageError(f"add: {r.spec}: a dependency takes a version range, not a tag",
                         hint=f"write {ref.name}@={ref.version or ref.tag} for exactly that "
                              f"version, or {ref.name}@^{ref.version or ref.tag}")
    name = r.rename or ref.repository.rsplit("/", 1)[-1]
    version = wanted.strip() or f"^{_newest(ref.name, store=store, access=access)}"
    if ref.name == f"{project.registry}/{name}":
        return name, ({"version": version} if r.private else version)
    return name, {"ref": ref.name, "version": version}


def _newest(package: str, *, store: Store, access: RegistryAccess) -> str:
    """The newest release of `package` (a pre-release only when it has nothing else), without
    build metadata: what a caret range starts from."""
    from ebpm.deps.source import RegistrySource
    from ebpm.errors import NotFoundError
    from ebpm.versions import latest_version, parse_version, version_from_tag

    try:
        tags = RegistrySource(store, access=access).versions(package)
    except NotFoundError as err:
        raise NotFoundError(f"add: {package}: no such package in {package.split('/')[0]}",
                            hint="check the name; `ebpm tags REPOSITORY` lists what a "
                                 "repository has", status=err.status, code=err.code) from err
    tag = latest_version(tags)
    if tag is None:
        raise UsageError(f"add: {package}: no release to add (no tag is a version)",
                         hint="give a range (NAME@RANGE) once a version is published")
    return str(parse_version(version_from_tag(tag)).replace(build=None))


# -- the TOML document ---------------------------------------------------------------------------

def _document(project: Project) -> tuple[bytes, Any, Any]:
    """ebpm.toml's bytes, its round-trip document and the document's [dependencies] (made,
    at the end, when it has none)."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    path = project.manifest.file
    raw = path.read_bytes()
    try:
        doc = tomlkit.parse(raw.removeprefix(_BOM).decode("utf-8"))
    except (ParseError, UnicodeDecodeError) as err:  # (tomllib read it: load_project)
        raise EbpmError(f"{path}: cannot be edited: {err}",
                        hint="edit [dependencies] by hand, or run ebpm lock") from err
    if "dependencies" not in doc:
        doc.add("dependencies", tomlkit.table())
    return raw, doc, doc["dependencies"]


def _put(table: Any, name: str, value: Any, old: Any) -> Any:
    """Set `name` in `table` to `value`, keeping its line's comment; a registry table that
    stays on the same package keeps its other keys (`private`) and gets the new version.
    Returns the value as it now reads."""
    if (isinstance(old, dict) and isinstance(value, str) and set(old) <= {"version", "private"}
            and isinstance(table.get(name), dict)):
        value = {**old, "version": value}
    elif (isinstance(old, dict) and isinstance(value, dict) and "version" in value
          and old.get("ref") == value.get("ref") and set(old) <= {"ref", "version", "private"}):
        value = {**old, **value}
    if value == old:
        return old
    if isinstance(old, dict) and isinstance(value, dict) and set(old) == set(value):
        for key in value:  # in place: keeps the table's own layout
            if value[key] != old[key]:
                table[name][key] = value[key]
    elif old is not None:
        table[name] = _item(value)
    else:
        _append(table, name, _item(value))
    return value


def _append(table: Any, name: str, item: Any) -> None:
    """Add `name` after the table's last entry: before the blank lines and comments that
    lead to the next table (tomlkit would add it after them, under the next one's comment),
    and before any `[dependencies.X]` tables."""
    from tomlkit.items import AoT, Table

    body = table.value.body
    at = 0
    for i, (key, value) in enumerate(body):
        if key is not None and not isinstance(value, Table | AoT):
            at = i + 1
    if at < len(body):
        table.value._insert_at(at, name, item)  # (tomlkit's own, keeps its index in step)
    else:
        table[name] = item


def _item(value: Any) -> Any:
    """A TOML item for `value`; a table inline, spaced as docs/dependencies.md writes them."""
    import tomlkit

    if not isinstance(value, dict):
        return value
    body = ", ".join(f"{k} = {tomlkit.item(v).as_string()}" for k, v in value.items())
    return tomlkit.parse(f"v = {{ {body} }}\n")["v"]


def _delete(table: Any, name: str) -> None:
    """Remove `name` from `table`. The comment lines that close a `[dependencies.NAME]` table
    (those above the next header) stay, where that table was."""
    from tomlkit.items import Comment, Table, Whitespace

    item = table[name]
    tail: list[Any] = []
    if isinstance(item, Table):
        body = item.value.body
        i = len(body)
        while i and body[i - 1][0] is None and isinstance(body[i - 1][1], Comment | Whitespace):
            i -= 1
        tail = [v for _, v in body[i:]]
        while tail and isinstance(tail[0], Whitespace):
            tail.pop(0)
    keys = [k.key if k is not None else None for k, _ in table.value.body]
    at = keys.index(name)
    del table[name]
    if not tail:
        return
    previous = table.value.body[at - 1][1] if at > 0 else None
    if isinstance(previous, Table):
        previous.value.body.extend((None, t) for t in tail)
    else:
        table.value.body[at:at] = [(None, t) for t in tail]


def _edited(project: Project, raw: bytes, doc: Any, before: dict[str, Any],
            after: dict[str, Any]) -> tuple[bytes, Project]:
    """The new bytes of ebpm.toml and the project they make, checked to differ from `raw`
    in [dependencies] alone, and there exactly by the edit (`after`)."""
    import tomllib

    import tomlkit

    text = tomlkit.dumps(doc)
    if raw.count(b"\r\n") * 2 > raw.count(b"\n"):  # a CRLF file: its new lines too
        text = text.replace("\r\n", "\n").replace("\n", "\r\n")
    new = (_BOM if raw.startswith(_BOM) else b"") + text.encode()
    old_data = tomllib.loads(raw.removeprefix(_BOM).decode())
    new_data = tomllib.loads(new.removeprefix(_BOM).decode())
    old_data.pop("dependencies", None)
    if new_data.pop("dependencies", {}) != after or new_data != old_data:
        raise EbpmError(
            f"{project.manifest.file}: the edit would change more than [dependencies] "
            "(ebpm could not keep its layout)",
            hint="edit [dependencies] by hand, then run ebpm lock",
        )
    return new, edited_project(project, new)


# -- lock, then write ------------------------------------------------------------------------------

def _lock(project: Project, edited: tuple[bytes, Project], *, unlock: set[str],
          access: RegistryAccess | None, allow_unsigned: bool, jobs: int, store: Store | None,
          reporter: ProgressReporter) -> LockResult:
    """The lock of the edited project, in memory (`_commit` writes it)."""
    from ebpm.deps.lock import lock

    return lock(project.root, project=edited[1], unlock=unlock or None, write=False,
                access=access, allow_unsigned=allow_unsigned, jobs=jobs, store=store,
                reporter=reporter)


def _commit(project: Project, raw: bytes, new: bytes, result: LockResult,
            changes: tuple[Change, ...], *, dry_run: bool) -> EditResult:
    """Write ebpm.toml, then ebpm.lock (each atomically); ebpm.toml is put back as it was
    when ebpm.lock cannot be written, so the two never disagree for long."""
    from ebpm.files import atomic_write

    path = project.manifest.file
    written = not dry_run and new != raw
    if written:
        mode = os.stat(path).st_mode & 0o7777
        atomic_write(path, new, mode=mode)
        try:
            if result.written:
                result.lockfile.dump(result.path)
        except BaseException:
            atomic_write(path, raw, mode=mode)
            raise
    elif not dry_run and result.written:
        result.lockfile.dump(result.path)
    return EditResult(changes, path, written, result, dry_run)
