"""Git sources: a ref resolved to a commit, fetched objects kept in the store, one commit's
package directory written out safely.

Each remote has a bare repository in the store (`$EBPM_HOME/git/<sha256(url)[:32]>.git`), so a
commit fetched once is there for `--offline` later. Nothing of git's own checkout machinery
runs: the package directory is written by reading the commit's tree (`git ls-tree`,
`git cat-file`), so no hook, filter or fsmonitor can execute, and every entry is checked first:
a submodule, a symlink leaving the package directory, a `.git` path component (a smuggled hook)
or build flags that load foreign code (`[build] cflags = ["-fplugin=…"]`) are refused with
`UnsafeSourceError`. git runs with no system or global configuration and hooks pointed at
/dev/null.

The *tree digest* of a package directory is the sha256 of lines `MODE SHA256 PATH\\n` sorted
by path (file contents hashed with sha256, symlink targets as their content): the same files
give the same digest whatever the commit, host or git object format.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ebpm.errors import (
    BuildError,
    CompileError,
    GitError,
    ManifestError,
    OfflineError,
    ToolMissingError,
    UnsafeSourceError,
)
from ebpm.record import record

if TYPE_CHECKING:
    from ebpm.oci.artifact import Artifact
    from ebpm.oci.layout import Store
    from ebpm.resolver.dependency import GitDependency
    from ebpm.resolver.source import GitPackage

__all__ = [
    "GitRepo",
    "Checkout",
    "BuiltCommit",
    "tree_digest_of",
    "check_build_flags",
    "describe",
    "build_commit",
    "store_name",
    "ensure_built",
    "prefetch",
    "BuiltPackage",
    "GIT_TIMEOUT",
]

GIT_TIMEOUT = 120.0  # seconds for one git command (a fetch of a large repository included)
_COMMIT_RE = re.compile(r"[a-f0-9]{40}")
_SAFE_FLAG_RE = re.compile(r"^-(?:[DUWOg]|mcpu=|std=|fno-|ffreestanding)")
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
    "GIT_ASKPASS": "true",
    "SSH_ASKPASS": "true",
    "LC_ALL": "C",
}
_KEEP_GIT_VARS = {"GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}
_LOOPBACK = "127.0.0.1,localhost,::1"


def _git_env() -> dict[str, str]:
    """The environment git runs in: the caller's, without git settings other than ssh/TLS
    ones, with no config files, no prompts, and loopback never through a proxy (as for
    registries)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") or k in _KEEP_GIT_VARS}
    env.update(_GIT_ENV)
    for var in ("no_proxy", "NO_PROXY"):
        env[var] = f"{env[var]},{_LOOPBACK}" if env.get(var) else _LOOPBACK
    return env


_GIT_OPTS = ["-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false",
             "-c", "protocol.file.allow=always", "-c", "gc.auto=0", "-c", "maintenance.auto=0"]


@record
class Checkout:
    """A package directory written from one commit."""

    commit: str
    directory: Path
    tree: str  # sha256:… (see the module docstring)
    files: int
    commit_time: int  # committer time (seconds), the build's SOURCE_DATE_EPOCH


class GitRepo:
    """The store's bare copy of one remote repository."""

    def __init__(self, store_root: str | Path, url: str, *, offline: bool = False) -> None:
        self.url = url
        self.offline = offline
        name = hashlib.sha256(url.encode()).hexdigest()[:32]
        self.path = Path(store_root) / "git" / f"{name}.git"
        self._fetched = False

    # -- running git ------------------------------------------------------------------------

    def _run(self, *args: str, what: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        env = _git_env()
        cmd = ["git", *_GIT_OPTS, *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, env=env, timeout=GIT_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except FileNotFoundError as err:
            raise ToolMissingError("git: not installed", hint="apt-get install git") from err
        except subprocess.TimeoutExpired as err:
            raise GitError(f"{self.url}: {what}: git took longer than {GIT_TIMEOUT:.0f} s") from err
        if check and proc.returncode != 0:
            self._fail(proc, what)
        return proc

    def _fail(self, proc: subprocess.CompletedProcess[bytes], what: str) -> None:
        said = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines()
                if ln.strip()]
        # git's first fatal/error line says why; what follows is advice ("Please make sure
        # you have the correct access rights / and the repository exists.")
        why = next((ln for ln in said if ln.startswith(("fatal:", "error:"))),
                   said[-1] if said else f"exit status {proc.returncode}")
        why = why.removeprefix("fatal: ").removeprefix("error: ")
        raise GitError(f"{self.url}: {what}: {why}",
                       hint="check the repository URL and that it is reachable")

    def _git(self, *args: str, what: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return self._run("--git-dir", str(self.path), *args, what=what, check=check)

    def _init(self) -> None:
        if (self.path / "HEAD").exists():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        self._run("init", "--bare", "--quiet", str(tmp), what="init the store's copy")
        try:
            os.rename(tmp, self.path)
        except OSError:  # another process made it first
            subprocess.run(["rm", "-rf", str(tmp)], check=False)

    # -- fetching ---------------------------------------------------------------------------

    @property
    def cached(self) -> bool:
        return (self.path / "HEAD").exists()

    def fetch(self) -> None:
        """Bring the store's copy up to date with the remote's branches, tags and HEAD (once)."""
        if self._fetched:
            return
        if self.offline:
            raise OfflineError(
                f"{self.url}: not fetched (offline)", hint="run `ebpm lock` once while online"
            )
        self._init()
        refs = [self.url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
        opts = ["fetch", "--quiet", "--prune", "--no-recurse-submodules", "--force"]
        proc = self._git(*opts, *refs, "+HEAD:refs/ebpm/HEAD", what="fetch", check=False)
        if proc.returncode != 0 and b"remote ref HEAD" in proc.stderr:
            # a bare repository whose HEAD names a branch nobody pushed (`git init --bare`
            # says master, the pushes went to main): branches and tags are still there
            self._git("update-ref", "-d", "refs/ebpm/HEAD", what="forget HEAD", check=False)
            self._git(*opts, *refs, what="fetch")
        elif proc.returncode != 0:
            self._fail(proc, "fetch")
        self._fetched = True

    def has_commit(self, commit: str) -> bool:
        if not self.cached:
            return False
        proc = self._git("cat-file", "-e", f"{commit}^{{commit}}", what="look up", check=False)
        return proc.returncode == 0

    def resolve(self, kind: str, ref: str) -> str:
        """The full commit id of a branch, tag or rev ('' ref: the remote's HEAD).

        Online the store's copy is fetched first; offline it answers from what was fetched.
        """
        if not self.offline:
            self.fetch()
        elif not self.cached:
            raise OfflineError(
                f"{self.url}: not in the store (offline)",
                hint="run `ebpm lock` or `ebpm install` once while online",
            )
        if kind == "rev":
            candidates = [f"{ref}^{{commit}}"]
        elif kind == "tag":
            candidates = [f"refs/tags/{ref}^{{commit}}"]
        elif ref:
            candidates = [f"refs/heads/{ref}^{{commit}}"]
        else:
            candidates = ["refs/ebpm/HEAD^{commit}"]
        for spec in candidates:
            proc = self._git("rev-parse", "--verify", "--quiet", spec, what="resolve", check=False)
            out = proc.stdout.decode().strip()
            if proc.returncode == 0 and _COMMIT_RE.fullmatch(out):
                return out
        if kind == "rev" and len(ref) == 40 and not self.offline:
            self.ensure(ref)
            return ref
        where = "the store's copy (offline)" if self.offline else "the repository"
        if self.offline:  # what the store lacks offline (e.g. only a commit's history came)
            shown = f"{kind} {ref!r}" if ref else "HEAD"
            raise OfflineError(f"{self.url}: no {shown} in {where}",
                               hint="run `ebpm lock` once while online")
        if not ref:
            raise GitError(
                f"{self.url}: its HEAD names no branch in {where}",
                hint='name one in ebpm.toml: branch = "main" (or tag, or rev)',
            )
        known = self._names(kind) if kind in ("branch", "tag") else []
        has = ""
        if known:
            plural = "branches" if kind == "branch" else "tags"
            more = ", …" if len(known) > 8 else ""
            has = f" (it has {plural}: {', '.join(known[:8])}{more})"
        raise GitError(
            f"{self.url}: no {kind} {ref!r} in {where}{has}",
            hint="check the branch, tag or rev in ebpm.toml",
        )

    def _names(self, kind: str) -> list[str]:
        """The branches (or tags) of the store's copy, sorted."""
        prefix = "refs/heads/" if kind == "branch" else "refs/tags/"
        proc = self._git("for-each-ref", "--format=%(refname)", prefix, what="list refs",
                         check=False)
        return sorted(line.removeprefix(prefix) for line in proc.stdout.decode().splitlines()
                      if line.startswith(prefix))

    def ensure(self, commit: str) -> None:
        """Make `commit` present in the store's copy (fetching only when it is missing)."""
        if self.has_commit(commit):
            return
        if self.offline:
            raise OfflineError(
                f"{self.url}: commit {commit[:12]} not in the store (offline)",
                hint="run `ebpm install` once while online",
            )
        self.fetch()
        if self.has_commit(commit):
            return
        # not on any branch or tag: ask for it by id (servers may refuse)
        self._git("fetch", "--quiet", "--no-recurse-submodules", self.url, commit,
                  what=f"fetch commit {commit[:12]}", check=False)
        if not self.has_commit(commit):
            raise GitError(
                f"{self.url}: commit {commit} is not in the repository",
                hint="it may have been force-pushed away; run `ebpm update` to pin a new one",
            )

    # -- carrying objects to another store (ebpm save --locked / ebpm load) -------------------

    def bundle(self, commit: str) -> bytes:
        """A git bundle of `commit` and its history (deterministic: one packing thread)."""
        import tempfile

        ref = f"refs/ebpm/save/{commit}"
        self._git("update-ref", ref, commit, what="name the commit")
        try:
            with tempfile.TemporaryDirectory(prefix="ebpm-bundle-") as tmp:
                out = Path(tmp) / "objects.bundle"
                self._git("-c", "pack.threads=1", "bundle", "create", "--quiet", str(out), ref,
                          what=f"bundle commit {commit[:12]}")
                return out.read_bytes()
        finally:
            self._git("update-ref", "-d", ref, what="forget the name", check=False)

    def adopt(self, bundle: Path, commit: str) -> bool:
        """Fetch `commit` from a bundle file into the store's copy (kept under
        refs/ebpm/pinned/); True when the copy now has it. Objects are checked by git, and a
        commit is its content's hash, so a bundle can add history but not change a commit."""
        if not _COMMIT_RE.fullmatch(commit):  # a ref name or refspec smuggled in: refused
            return False
        if self.has_commit(commit):
            return True
        self._init()
        pinned = f"refs/ebpm/pinned/{commit}"
        self._git("fetch", "--quiet", "--no-recurse-submodules", str(bundle),
                  f"refs/ebpm/save/{commit}:{pinned}", what="read a bundle", check=False)
        got = self._git("rev-parse", "--verify", "--quiet", pinned, what="check",
                        check=False).stdout.decode().strip()
        if got != commit:
            self._git("update-ref", "-d", pinned, what="forget", check=False)
            return False
        return self.has_commit(commit)

    # -- reading one commit -----------------------------------------------------------------

    def commit_time(self, commit: str) -> int:
        out = self._git("show", "-s", "--format=%ct", commit, what="read commit").stdout
        return int(out.decode().strip() or 0)

    def read_file(self, commit: str, path: str) -> bytes | None:
        proc = self._git("cat-file", "blob", f"{commit}:{path}", what="read", check=False)
        return proc.stdout if proc.returncode == 0 else None

    def _entries(self, commit: str, subdir: str) -> list[tuple[str, str, str, str]]:
        """(mode, type, object id, path relative to subdir) of every entry below subdir."""
        spec = f"{commit}:{subdir}" if subdir else f"{commit}^{{tree}}"
        kind = self._git("cat-file", "-t", spec, what="read tree", check=False)
        if kind.returncode != 0 or kind.stdout.strip() != b"tree":
            raise GitError(
                f"{self.url}: {subdir or '/'} is not a directory at commit {commit[:12]}",
                hint="check `subdir` in ebpm.toml",
            )
        out = self._git("ls-tree", "-r", "-z", "--full-tree", spec, what="list tree").stdout
        entries = []
        for item in out.split(b"\0"):
            if not item:
                continue
            meta, _, path = item.partition(b"\t")
            mode, kind_, oid = meta.decode().split()
            entries.append((mode, kind_, oid, path.decode("utf-8", errors="surrogateescape")))
        return entries

    def checkout(self, commit: str, subdir: str, dest: str | Path) -> Checkout:
        """Write the package directory `subdir` of `commit` into the empty directory `dest`,
        refusing anything unsafe before a single file is written."""
        self.ensure(commit)
        entries = self._entries(commit, subdir)
        where = f"{self.url} {subdir + ' ' if subdir else ''}at {commit[:12]}"
        blobs: dict[str, bytes] = {}
        for mode, kind, _oid, path in entries:
            parts = path.split("/")
            if any(p.lower() == ".git" for p in parts):
                raise UnsafeSourceError(
                    f"{where}: {path}: a .git entry (hooks or repository files) in the tree",
                    hint="ebpm never runs a package's git hooks; remove it from the repository",
                )
            if kind == "commit" or mode == "160000":
                raise UnsafeSourceError(
                    f"{where}: {path} is a submodule pointing outside the repository"
                    f"{self._submodule_url(commit, subdir, path)}",
                    hint="ebpm does not fetch submodules: vendor the files, or depend on that "
                    "repository as its own git dependency",
                )
            if kind != "blob":
                raise UnsafeSourceError(f"{where}: {path}: unexpected {kind} entry")
        data = self._blobs([oid for _, _, oid, _ in entries])
        for mode, _, oid, path in entries:
            content = data[oid]
            if mode == "120000":
                target = content.decode("utf-8", errors="surrogateescape")
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
                if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise UnsafeSourceError(
                        f"{where}: symlink {path} -> {target} leaves the package directory",
                        hint="make it a regular file, or a link inside the package",
                    )
            blobs[path] = content
        root = Path(dest)
        root.mkdir(parents=True, exist_ok=True)
        if any(root.iterdir()):
            raise GitError(f"{root}: checkout directory is not empty")
        for mode, _, _, path in entries:
            target_path = root / path
            target_path.parent.mkdir(parents=True, exist_ok=True)
            if mode == "120000":
                os.symlink(blobs[path].decode("utf-8", errors="surrogateescape"), target_path)
            else:
                target_path.write_bytes(blobs[path])
                os.chmod(target_path, 0o755 if mode == "100755" else 0o644)
        digest = tree_digest_of([(mode, blobs[path], path) for mode, _, _, path in entries])
        return Checkout(commit, root, digest, len(entries), self.commit_time(commit))

    def tree_digest(self, commit: str, subdir: str) -> str:
        """The tree digest of `subdir` at `commit`, without writing anything."""
        self.ensure(commit)
        entries = self._entries(commit, subdir)
        data = self._blobs([oid for _, _, oid, _ in entries if len(oid) >= 40])
        return tree_digest_of([(mode, data.get(oid, oid.encode()), path)
                               for mode, _, oid, path in entries])

    def _blobs(self, oids: list[str]) -> dict[str, bytes]:
        """Object contents by id, read in one `git cat-file --batch`."""
        wanted = sorted(set(oids))
        if not wanted:
            return {}
        env = _git_env()
        proc = subprocess.run(
            ["git", *_GIT_OPTS, "--git-dir", str(self.path), "cat-file", "--batch"],
            input="".join(f"{o}\n" for o in wanted).encode(), capture_output=True, env=env,
            timeout=GIT_TIMEOUT, check=False,
        )
        out, pos, found = proc.stdout, 0, {}
        for oid in wanted:
            end = out.index(b"\n", pos)
            header = out[pos:end].decode().split()
            if len(header) != 3:
                raise GitError(f"{self.url}: object {oid} is missing from the store's copy")
            size = int(header[2])
            found[oid] = out[end + 1 : end + 1 + size]
            pos = end + 1 + size + 1
        return found

    def _submodule_url(self, commit: str, subdir: str, path: str) -> str:
        text = self.read_file(commit, ".gitmodules")
        if not text:
            return ""
        full = posixpath.join(subdir, path) if subdir else path
        current_path = ""
        for line in text.decode(errors="replace").splitlines():
            key, _, value = (x.strip() for x in line.partition("="))
            if key == "path":
                current_path = value
            elif key == "url" and current_path == full:
                return f" ({value})"
        return ""


def prefetch(repos: list[GitRepo], *, jobs: int) -> None:
    """Fetch several repositories at once (`jobs` at a time); each then counts as fetched."""
    from ebpm.meanwhile import each

    each(GitRepo.fetch, repos, jobs)


def tree_digest_of(entries: list[tuple[str, bytes, str]]) -> str:
    """sha256 over `MODE SHA256 PATH\\n` lines sorted by path, for (mode, content, path)."""
    h = hashlib.sha256()
    for mode, content, path in sorted(entries, key=lambda e: e[2]):
        h.update(f"{mode} {hashlib.sha256(content).hexdigest()} {path}\n".encode(
            "utf-8", errors="surrogateescape"))
    return "sha256:" + h.hexdigest()


@record
class BuiltCommit:
    """A git package built from one commit: the packed artifact and the tree it came from."""

    artifact: Artifact
    tree: str
    commit: str


def store_name(url: str, subdir: str, commit: str) -> str:
    """The store's index name of the build of `subdir` at `commit` (kept by `cache prune`)."""
    where = hashlib.sha256(f"{url}#{subdir}".encode()).hexdigest()[:16]
    return f"git.ebpm/{where}:{commit}"


@record
class BuiltPackage:
    """A git package's build in the store: its manifest, config and layer digests."""

    digest: str
    config_digest: str
    layers: tuple[str, ...]
    version: str
    tree: str
    cached: bool  # found in the store (no checkout, no build)


def ensure_built(
    store: Store, url: str, subdir: str, commit: str, *, want: str = "", tree: str = "",
    offline: bool,
) -> BuiltPackage:
    """The store's build of `subdir` at `commit`, building it (ebpm build) when missing.

    `want`: the manifest digest the lock pins; a build that differs stops with both digests
    (nothing is stored). `tree`: the tree digest the lock pins, checked the same way.
    """
    from ebpm.errors import DigestMismatchError
    from ebpm.oci.model import Descriptor
    from ebpm.package import PackageConfig

    name = store_name(url, subdir, commit)
    found = store.resolve(name)
    if want and (found is None or found.digest != want) and store.holds(want):
        # the build the lock pins is in the store unnamed (loaded from `ebpm save --locked`):
        # the lock's digest vouches for it, as it would for a rebuild
        raw, stored = store.read_manifest(want)
        if all(store.holds(d.digest, d.size) for d in (stored.config, *stored.layers)):
            found = Descriptor(stored.media_type, want, len(raw),
                               artifact_type=stored.artifact_type)
            with store.lock():
                store.tag(name, found)
    if found is not None and (not want or found.digest == want):
        cached = _stored_build(store, found.digest, found.size)
        if cached is not None:
            config, manifest = cached
            return BuiltPackage(found.digest, manifest.config.digest,
                                tuple(d.digest for d in manifest.layers), config.version,
                                tree or "", True)
    built = build_commit(store.root, url, commit, subdir, offline=offline)
    where = f"{url} {subdir + ' ' if subdir else ''}at {commit[:12]}"
    if tree and built.tree != tree:
        raise DigestMismatchError(
            f"{where}: files digest {built.tree}, the lock pins {tree}",
            hint="the repository's content at that commit changed; nothing was stored",
        )
    art = built.artifact
    if want and art.digest != want:
        raise DigestMismatchError(
            f"{where}: the rebuild gives {art.digest}, the lock pins {want}",
            hint="the build does not reproduce here (another clang, ebpm or kernel "
            "vmlinux.h?); nothing was stored — run `ebpm update` to pin this build",
        )
    with store.lock():
        for blob in art.blobs:
            store.write_blob(blob.data, blob.descriptor.digest)
        store.write_blob(art.manifest_bytes, art.digest)
        store.tag(name, Descriptor(art.manifest.media_type, art.digest, art.size,
                                   artifact_type=art.manifest.artifact_type))
    config = PackageConfig.from_json(art.config.data)
    return BuiltPackage(art.digest, art.config.descriptor.digest,
                        tuple(b.descriptor.digest for b in art.layers), config.version,
                        built.tree, False)


def _stored_build(store: Store, digest: str, size: int) -> tuple[Any, Any] | None:
    """(PackageConfig, Manifest) of a build whose blobs are all in the store and intact (each
    hashed once), else None (it is built again)."""
    from ebpm.errors import DigestMismatchError, StoreError
    from ebpm.package import PackageConfig

    try:
        _, manifest = store.read_manifest(digest, size=size)
        config = PackageConfig.from_json(store.read_blob(manifest.config.digest,
                                                         size=manifest.config.size))
    except (StoreError, DigestMismatchError, ManifestError):
        return None
    if not all(store.holds(d.digest, d.size) for d in manifest.layers):
        return None
    return config, manifest


def describe(
    store_root: str | Path, dep: GitDependency, locked_commit: str = "", *, offline: bool,
    repo: GitRepo | None = None,
) -> GitPackage:
    """What the resolver needs of a git dependency: the commit (the locked one while the store
    has it or can fetch it, else the head of the ref), its ebpm.toml, and its tree digest.
    `repo`: the store's copy to use (one fetched already is not fetched again)."""
    import tomllib

    from ebpm.resolver.source import GitPackage

    repo = repo or GitRepo(store_root, dep.git, offline=offline)
    if locked_commit:
        repo.ensure(locked_commit)
        commit = locked_commit
    else:
        commit = repo.resolve(dep.ref_kind, dep.ref)
    path = f"{dep.subdir}/ebpm.toml" if dep.subdir else "ebpm.toml"
    where = f"{dep.git} {path} at {commit[:12]}"
    text = repo.read_file(commit, path)
    if text is None:
        listed = repo._git("ls-tree", "-r", "--name-only", commit, what="list files",
                           check=False).stdout.decode(errors="replace").splitlines()
        found = sorted(posixpath.dirname(f) or "." for f in listed
                       if posixpath.basename(f) == "ebpm.toml")
        raise GitError(
            f"{dep.git}: no {path} at commit {commit[:12]}"
            + (f" (packages there: subdir = {', '.join(repr(f) for f in found[:5])})"
               if found else " (no ebpm.toml anywhere in the repository)"),
            hint="point `subdir` at the package directory (the one holding ebpm.toml)",
        )
    try:
        data = tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ManifestError(f"{where}: {err}") from err
    pkg = data.get("package")
    version = pkg.get("version", "") if isinstance(pkg, dict) else ""
    deps = data.get("dependencies", {})
    return GitPackage(commit, str(version), deps if isinstance(deps, dict) else {},
                      repo.tree_digest(commit, dep.subdir))


def build_commit(
    store_root: str | Path, url: str, commit: str, subdir: str, *, offline: bool,
    vmlinux_h: str | Path | None = None,
) -> BuiltCommit:
    """Check out `subdir` of `commit` into a temporary directory, build it with `ebpm build`
    and pack it (revision = the commit, created = its committer time). The URL is not part of
    the result: the same commit built from a mirror of the repository gives the same digest."""
    import tempfile

    from ebpm.build.builder import build
    from ebpm.oci.artifact import Layer, created_from_epoch, pack
    from ebpm.package import ProjectManifest
    from ebpm.transfer.pack import pack_path

    repo = GitRepo(store_root, url, offline=offline)
    with tempfile.TemporaryDirectory(prefix="ebpm-git-") as tmp:
        checkout = repo.checkout(commit, subdir, Path(tmp) / "package")
        where = f"{url} {subdir + ' ' if subdir else ''}at {commit[:12]}"
        manifest = ProjectManifest.load(checkout.directory)
        check_build_flags(manifest.build, where=where)
        if manifest.readme:
            check_build_flags({"readme": manifest.readme}, where=where)
        try:
            build(checkout.directory, vmlinux_h=vmlinux_h)
        except BuildError as err:  # clang's lines name files of that commit: say which one
            err.message = f"{where}: {err.message}"
            if isinstance(err, CompileError):
                err.hint = ("that commit does not build here: fix it upstream, or pin one "
                            "that builds (tag or rev in ebpm.toml), then run this command again")
            raise
        packed = pack_path(checkout.directory, revision=commit)
    annotations = dict(packed.manifest.annotations)
    annotations["org.opencontainers.image.created"] = created_from_epoch(
        str(checkout.commit_time))
    layers = [Layer(b.descriptor.media_type,
                    b.descriptor.annotations.get("org.opencontainers.image.title", ""), b.data)
              for b in packed.layers]
    # no embedded config: a git build is never pulled from a registry, and ebpm.lock pins its
    # manifest digest, which locks written before configs were embedded must still reproduce
    artifact = pack(packed.config.data, layers, annotations=annotations, embed=False)
    return BuiltCommit(artifact, checkout.tree, commit)


def check_build_flags(build: dict[str, Any], *, where: str) -> None:
    """Refuse `[build]` settings of a fetched package that reach outside it or load code.

    Paths (`source`, `vmlinux`, `wasm`) must be relative and stay inside the package; cflags
    are limited to -D/-U/-W/-O/-g/-std=/-mcpu=/-fno-… and -I inside the package.
    """
    for key in ("source", "vmlinux", "wasm", "readme"):
        value = build.get(key)
        if isinstance(value, str) and value:
            norm = posixpath.normpath(value)
            if value.startswith("/") or norm == ".." or norm.startswith("../"):
                raise UnsafeSourceError(
                    f"{where}: [build] {key} = {value!r} leaves the package directory",
                    hint="a git package builds only from its own files",
                )
    flags = build.get("cflags", [])
    for flag in flags if isinstance(flags, list) else []:
        text = str(flag)
        if text.startswith("-I"):
            inc = posixpath.normpath(text[2:])
            if text[2:].startswith("/") or inc == ".." or inc.startswith("../"):
                raise UnsafeSourceError(
                    f"{where}: [build] cflags {text!r} includes from outside the package",
                    hint="a git package builds only from its own files",
                )
            continue
        if not _SAFE_FLAG_RE.match(text) or "plugin" in text:
            raise UnsafeSourceError(
                f"{where}: [build] cflags {text!r} is not allowed in a fetched package",
                hint="a git package may use -D, -U, -W, -O, -g, -std=, -mcpu=, -fno-… and "
                "-I inside itself (flags like -fplugin or -Xclang -load run foreign code)",
            )
