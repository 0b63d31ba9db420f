"""The local store: an OCI image layout (readable by `skopeo copy oci:DIR:REF`) plus ebpm's state.

    $EBPM_HOME/oci-layout, index.json, blobs/sha256/…   the OCI image layout
    $EBPM_HOME/ebpm/tags/<registry>/<repository>.json    cached tag lists (offline resolution)
    index.json's entries, annotation dev.ebpm.verification  signature verification records
    $EBPM_HOME/ebpm/lock                                 serializes concurrent processes

Index entries are named by the full reference (`org.opencontainers.image.ref.name` =
`registry/repository:tag`). Every write is atomic (temp file + rename) and every blob read is
verified against its digest again. A cosign `.sig` entry's config and payload have no file:
they are made from its manifest and name when read (`DERIVED`, docs/format.md).

Inside `batch()` (a pull, an install) index changes are collected and written once at the end,
and files are written without an fsync each: at the end they are made durable together (one
syncfs for many), then the index names them. A crash at any moment leaves the old index or the
new one, never one that names a file that is not complete on disk.

Paths are strings (`os.path`): a pull imports no `pathlib` (see `ebpm.config`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator

from ebpm.canonical import canonical_json
from ebpm.digests import sha256, sha256_digest
from ebpm.errors import DigestMismatchError, ManifestError, StoreError
from ebpm.files import FILE_MODE, atomic_move, atomic_write, give_to_invoker, sync_files
from ebpm.oci.model import INDEX_V1, Descriptor, Manifest, verify_digest
from ebpm.oci.reference import DIGEST_RE
from ebpm.record import record

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Store", "Entry", "REF_NAME", "VERIFICATION", "DERIVED"]

REF_NAME = "org.opencontainers.image.ref.name"
# the verification record of (the entry's repository, its digest), on the index entries naming
# the package: written with the index (no file of its own), dropped with the entry
VERIFICATION = "dev.ebpm.verification"
# on a cosign `.sig` entry: the digests (space-separated) of its blobs the store keeps no file
# of, as its manifest and name make them (its config and payload: oci.signature.known_blobs)
DERIVED = "dev.ebpm.derived"
BLOB_MODE = 0o444  # blobs are content-addressed: never written in place
_LAYOUT = {"imageLayoutVersion": "1.0.0"}
LOCK_TIMEOUT = 60.0  # seconds to wait for another process


@record
class Entry:
    """One named manifest in the store's index."""

    name: str  # registry/repository:tag or registry/repository@digest
    descriptor: Descriptor

    @property
    def repository(self) -> str:
        """registry/repository of the entry's name."""
        return _repository(self.name)

    @property
    def tag(self) -> str:
        name = self.name.split("@", 1)[0]
        slash, colon = name.rfind("/"), name.rfind(":")
        return name[colon + 1 :] if colon > slash else ""


def _repository(name: str) -> str:
    """registry/repository of an index name (registry/repository:tag or @digest)."""
    name = name.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


class _Batch:
    """What a `Store.batch()` has deferred: index changes and files not yet fsynced."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.ops: list[tuple[str, dict[str, Any] | None]] = []  # (name, entry or None: untag)
        self.named: dict[str, dict[str, Any] | None] = {}  # name -> its last op's entry
        # (repository, digest) -> the names the batch pointed at it (some may point elsewhere
        # since: check `named`)
        self.pointed: dict[tuple[str, str], set[str]] = {}
        # (repository, digest) -> its verification record (canonical JSON), None: cleared
        self.marks: dict[tuple[str, str], str | None] = {}
        self.unnamed: set[tuple[str, str]] = set()  # marked while no entry named the package
        self.files: list[str] = []
        self.staging: dict[int, str] = {}  # thread -> its staging directory
        self.serial = next(_BATCHES)
        self.laid_out = False  # this batch laid a new store out (its index is written at the end)
        self.laying_out = threading.Lock()  # the first of the batch's threads lays it out
        self.swept = False  # the staging directories of dead processes were removed


_BATCHES = itertools.count(1)


def _apply(manifests: list[dict[str, Any]], ops: list[tuple[str, dict[str, Any] | None]]
           ) -> list[dict[str, Any]]:
    """The entries after the tag (entry) and untag (None) operations, in order."""
    if not ops:
        return manifests
    named = {name for name, _ in ops}
    last: dict[str, dict[str, Any] | None] = {}
    for name, entry in ops:
        last[name] = entry
    kept = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) not in named]
    return kept + [entry for entry in last.values() if entry is not None]


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove_dir(path: str) -> None:
    """Remove a staging directory and what is left in it (files; anything deeper goes through
    shutil.rmtree)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            import shutil

            shutil.rmtree(path, ignore_errors=True)
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(path)


class _RootLock:
    """The threads of one process taking one store's lock: who holds it, how deeply."""

    def __init__(self) -> None:
        import threading

        self.rlock = threading.RLock()
        self.depth = 0


_ROOT_LOCKS: dict[str, _RootLock] = {}


def _root_lock(root: str) -> _RootLock:
    key = os.path.abspath(root)
    found = _ROOT_LOCKS.get(key)
    if found is None:  # setdefault: two threads creating it at once agree on one
        found = _ROOT_LOCKS.setdefault(key, _RootLock())
    return found


def _missing(digest: str) -> StoreError:
    return StoreError(f"store: blob {digest} is missing",
                      hint="pull the package again (online); a concurrent `ebpm rm` or "
                           "`cache prune` removes blobs")


def _freshen(path: str) -> None:
    """Mark a blob as just used (its mtime), so that a prune's grace period covers a writer
    that found the blob it was about to write and will name it soon (git freshens its
    objects for the same reason)."""
    with contextlib.suppress(OSError):  # a store we may not write: nothing to protect
        os.utime(path)


class Store:
    """The local OCI-layout store (cache and offline source)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        if root is None:
            from ebpm import config

            root = config.store_home()
        self.root = os.fspath(root)
        self.state_dir = os.path.join(self.root, "ebpm")
        self._blobs = os.path.join(self.root, "blobs", "sha256")
        self._index_path = os.path.join(self.root, "index.json")
        self._batch: _Batch | None = None
        self._batch_depth = 0
        import threading

        self._batch_guard = threading.Lock()
        self._dirs_made = False  # _make_dirs ran (the store's directories exist)
        # the parsed index.json (by the file's identity) and its entries with a batch's changes
        # applied (by batch and number of changes): an install asks hundreds of times
        self._index_file: tuple[tuple[int, int, int], int, list[dict[str, Any]]] | None = None
        self._index_view: tuple[tuple[int, int, int], list[dict[str, Any]]] | None = None
        self._parsed: dict[int, tuple[dict[str, Any], Entry | None]] = {}  # id(raw) -> entry
        # the index file's entries by name, for the file of this generation (an install looks
        # names up hundreds of times: no walk over every entry each time)
        self._names: tuple[int, dict[str, Entry]] | None = None
        # and by (repository, digest), for `find`
        self._digests: tuple[int, dict[tuple[str, str], list[Entry]]] | None = None
        # verification records made outside a batch for a package no entry named yet (`ebpm
        # load` checks, then tags): given to the entry when it is tagged
        self._marks: dict[tuple[str, str], str | None] = {}
        self._legacy: bool | None = None  # the store has records of the old layout (files)

    def _write(self, path: str, data: bytes, *, mode: int = FILE_MODE) -> None:
        """Atomically; durably now, or at the end of the batch. The store's files belong to
        the invoking user, also under sudo."""
        batch = self._batch
        atomic_write(path, data, mode=mode, to_invoker=True, durable=batch is None)
        if batch is not None:
            with batch.lock:
                batch.files.append(path)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer index writes and fsyncs to the end of the block. Blocks that overlap, nested
        or in other threads (an install's workers, a hub refresh's), share one batch, which
        ends with the last of them: the files written are made durable, then the index is
        read again under the store lock, changed and written once (also after an error)."""
        with self._batch_guard:
            if self._batch is None:
                self._batch = _Batch()
            self._batch_depth += 1
        try:
            yield
        finally:
            with self._batch_guard:  # a new batch waits until this one is written
                self._batch_depth -= 1
                if self._batch_depth == 0 and self._batch is not None:
                    batch, self._batch = self._batch, None
                    try:
                        self._commit(batch)
                    finally:
                        for path in batch.staging.values():
                            _remove_dir(path)

    def _commit(self, batch: _Batch) -> None:
        if batch.files:
            sync_files(batch.files, root=self.root)
        if batch.ops or batch.laid_out:
            with self.lock():
                self._write_index(_apply(self._read_index(), batch.ops))
        for key in batch.unnamed - batch.pointed.keys():  # (`ebpm load` checks, then tags)
            self._marks[key] = batch.marks[key]

    # -- layout -----------------------------------------------------------------------------

    def _ensure(self) -> None:
        """Lay a new store out: its directories, `oci-layout`, then `index.json`, whose presence
        marks a store laid out. Inside a batch (a first pull) nothing is fsynced here: the
        layout file is made durable with the batch's files and the index is written at the
        end, durably, as always."""
        batch = self._batch
        if (batch is not None and batch.laid_out) or os.path.exists(self._index_path):
            return
        if batch is not None:
            with batch.laying_out:  # once, not once per worker that gets here first
                if not batch.laid_out:
                    self._dirs_made = False  # (not laid out: made again, whatever was)
                    self._make_dirs()
                    self._write(os.path.join(self.root, "oci-layout"),
                                canonical_json(_LAYOUT))
                    batch.laid_out = True
            return
        self._dirs_made = False
        self._make_dirs()
        self._write(os.path.join(self.root, "oci-layout"), canonical_json(_LAYOUT))
        if not os.path.exists(self._index_path):
            self._write_index([])

    def _make_dirs(self) -> None:
        """The store's directories, made once per Store (an install's workers take the store
        lock once per package: 3 mkdir+stat each time otherwise)."""
        if self._dirs_made:
            return
        for directory in (self.root, self._blobs, self.state_dir):
            os.makedirs(directory, exist_ok=True)
            give_to_invoker(directory)
        self._dirs_made = True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock across processes for read-modify-write of the index. The threads
        of this process queue for it on a lock of their own (an install's workers hand it on
        at once, rather than each polling the file lock); a thread holding it may take it
        again."""
        import fcntl
        import time

        held = _root_lock(self.root)
        with held.rlock:
            if held.depth:
                held.depth += 1
                try:
                    yield
                finally:
                    held.depth -= 1
                return
            self._make_dirs()  # (what is written under the lock lays the store out itself)
            lock_path = os.path.join(self.state_dir, "lock")
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the store was removed since this Store made it
                self._dirs_made = False
                self._make_dirs()
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                deadline = time.monotonic() + LOCK_TIMEOUT
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise StoreError(
                                f"store {self.root} is locked by another ebpm process",
                                hint=f"wait for it to finish, or check `fuser {lock_path}`",
                            ) from None
                        time.sleep(0.02)
                held.depth = 1
                try:
                    yield
                finally:
                    held.depth = 0
            finally:
                os.close(fd)  # closing releases the lock

    # -- blobs ------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        if not DIGEST_RE.fullmatch(digest):
            raise StoreError(f"invalid digest {digest!r}")
        return os.path.join(self._blobs, digest.partition(":")[2])

    def has_blob(self, digest: str) -> bool:
        path = self.blob_path(digest)
        if not os.path.isfile(path):
            return False
        _freshen(path)
        return True

    def holds(self, digest: str, size: int | None = None) -> bool:
        """True when the blob is present and intact (a damaged one counts as absent)."""
        path = self.blob_path(digest)
        if not os.path.isfile(path):
            return False
        try:
            self.check_blob(digest, size=size)
        except (StoreError, DigestMismatchError):
            return False
        _freshen(path)
        return True

    def check_blob(self, digest: str, *, size: int | None = None) -> None:
        """Verify the blob on disk against its digest (and size) as `read_blob` does, hashing
        it in chunks: memory stays flat whatever its size."""
        path = self.blob_path(digest)
        hasher = sha256()
        length = 0
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    hasher.update(chunk)
                    length += len(chunk)
        except FileNotFoundError as err:
            raise _missing(digest) from err
        what = f"store blob {path}"
        if size is not None and size >= 0 and length != size:
            raise DigestMismatchError(f"{what} {digest}: got {length} bytes, want {size}",
                                      hint="the blob was truncated or changed; pull it again")
        got = "sha256:" + hasher.hexdigest()
        if got != digest:
            raise DigestMismatchError(f"{what}: got digest {got}, want {digest}",
                                      hint="the blob was corrupted or changed; pull it again")

    def read_blob(self, digest: str, *, size: int | None = None) -> bytes:
        """The blob's bytes, verified against the digest (and size) on every read. A blob the
        store keeps no file of (a `.sig` entry's config and payload, `DERIVED`) is made from
        what it keeps."""
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError as err:
            made = self._derive(digest)
            if made is None:
                raise _missing(digest) from err
            data = made
        verify_digest(data, digest, size, what=f"store blob {path}")
        return data

    def _derive(self, digest: str) -> bytes | None:
        """The bytes of `digest` made from a cosign signature entry that names it as derived:
        its manifest (a file) and its name (repository and the signed digest)."""
        from ebpm.oci.signature import known_blobs

        for entry in self.entries():
            if digest not in entry.descriptor.annotations.get(DERIVED, "").split():
                continue
            tag = entry.tag
            if not (tag.startswith("sha256-") and tag.endswith(".sig")):
                continue
            try:  # (its file itself: a manifest is never made, so nothing recurses)
                with open(self.blob_path(entry.descriptor.digest), "rb") as fh:
                    data = fh.read()
                verify_digest(data, entry.descriptor.digest)
                manifest = Manifest.from_bytes(data, where="store signature manifest")
            except (OSError, DigestMismatchError, ManifestError):
                continue
            subject = "sha256:" + tag.removeprefix("sha256-").removesuffix(".sig")
            made = known_blobs(manifest, entry.repository, subject).get(digest)
            if made is not None:
                return made
        return None

    def write_blob(self, data: bytes, digest: str | None = None) -> str:
        """Store `data` (verified against `digest` when given); returns its digest."""
        if digest is None:
            digest = sha256_digest(data)
        else:
            verify_digest(data, digest)
        self._ensure()
        path = self.blob_path(digest)
        if not self.holds(digest):  # absent, or damaged: (re)write it
            self._write(path, data, mode=BLOB_MODE)
        return digest

    def adopt_blob(self, path: str | os.PathLike[str], digest: str) -> bool:
        """Move a file whose content was verified against `digest` (on the store's filesystem,
        e.g. from `staging()`) into place; False (and the file removed) when the store already
        holds the blob intact. Large blobs never pass through memory this way."""
        self._ensure()
        target = self.blob_path(digest)
        if os.path.isfile(target) and self.holds(digest):
            os.unlink(path)
            return False
        batch = self._batch
        atomic_move(path, target, mode=BLOB_MODE, to_invoker=True, durable=batch is None)
        if batch is not None:
            with batch.lock:
                batch.files.append(target)
        return True

    @contextlib.contextmanager
    def staging(self) -> Iterator[str]:
        """A private temp directory on the store's filesystem (for downloads and archive
        members on their way in), removed with whatever is left in it. Its name carries our
        pid: the staging directories of processes that died (kill -9 mid-download) are removed
        here, by the next one."""
        import threading

        with self.batch():  # the directory lives as long as the batch, one per thread
            self._ensure()
            batch = self._batch
            assert batch is not None
            key = threading.get_ident()
            with batch.lock:
                path = batch.staging.get(key)
                if path is None:
                    if not batch.swept:  # once a batch, not once per thread
                        self.remove_stale_staging()
                        batch.swept = True
                    path = self._new_staging()
                    batch.staging[key] = path
            try:
                yield path
            finally:
                for leftover in os.scandir(path):  # what this use did not adopt
                    if leftover.is_dir(follow_symlinks=False):
                        _remove_dir(leftover.path)
                    else:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(leftover.path)

    def _new_staging(self) -> str:
        """A new private directory staging-PID-RANDOM (as tempfile.mkdtemp, without importing
        tempfile and shutil on every pull). The store may have been laid out by another tool
        (skopeo writes no `ebpm/`): its directories are made first."""
        self._make_dirs()
        while True:
            path = os.path.join(self.state_dir, f"staging-{os.getpid()}-{os.urandom(6).hex()}")
            try:
                os.mkdir(path, 0o700)
                return path
            except FileExistsError:
                continue

    def remove_stale_staging(self) -> list[str]:
        """Remove the staging directories whose process is gone; returns them."""
        removed: list[str] = []
        try:  # (a listing, not glob(): no pattern compiled on every pull)
            names = [e.name for e in os.scandir(self.state_dir) if e.name.startswith("staging-")]
        except FileNotFoundError:
            return removed
        mine = str(os.getpid())
        for name in sorted(names):
            path = os.path.join(self.state_dir, name)
            pid = name.split("-")[1]
            if pid != mine and (not pid.isdigit() or not _process_exists(int(pid))):
                _remove_dir(path)
                removed.append(path)
        return removed

    def read_manifest(self, digest: str, *, size: int | None = None) -> tuple[bytes, Manifest]:
        data = self.read_blob(digest, size=size)
        return data, Manifest.from_bytes(data, where=f"store manifest {digest}")

    # -- index ------------------------------------------------------------------------------

    def _read_index(self) -> list[dict[str, Any]]:
        """The index's entries, with the changes of a running batch applied."""
        return self._view()[1]

    def _view(self) -> tuple[tuple[int, int, int], list[dict[str, Any]]]:
        """(key, entries with the batch's changes): the key changes whenever they may."""
        generation, manifests = self._read_index_file()
        batch = self._batch
        if batch is None or not batch.ops:
            return (generation, 0, 0), manifests
        with batch.lock:
            ops = batch.ops[:]
        key = (generation, batch.serial, len(ops))
        view = self._index_view
        if view is not None and view[0] == key:
            return key, view[1]
        manifests = _apply(manifests, ops)
        self._index_view = (key, manifests)
        return key, manifests

    def _read_index_file(self) -> tuple[int, list[dict[str, Any]]]:
        """(generation, entries). Inside a batch (an install, a pull) the file is parsed again
        only when it changed (another inode, size or mtime: every write replaces it); outside
        one it is read every time."""
        path = self._index_path
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return 0, []
        ident = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._index_file
        if cached is not None and cached[0] == ident and self._batch is not None:
            return cached[1], cached[2]
        try:
            with open(path, "rb") as fh:
                doc = json.loads(fh.read())
        except FileNotFoundError:
            return 0, []
        except ValueError as err:
            raise StoreError(
                f"store: {path} is not valid JSON: {err}",
                hint=f"remove {self.root} to start over (it is only a cache)",
            ) from err
        manifests = doc.get("manifests", []) if isinstance(doc, dict) else None
        if not isinstance(manifests, list):
            raise StoreError(f"store: {path} has no manifests list")
        generation = next(_BATCHES)
        self._index_file = (ident, generation, manifests)
        self._parsed = {}  # parsed entries of an older file are of no more use
        return generation, manifests

    def _write_index(self, manifests: list[dict[str, Any]]) -> None:
        manifests = sorted(
            manifests, key=lambda m: ((m.get("annotations") or {}).get(REF_NAME, ""), m["digest"])
        )
        self._index_file = self._index_view = None
        doc = {"schemaVersion": 2, "mediaType": INDEX_V1, "manifests": manifests}
        atomic_write(self._index_path, json.dumps(doc, indent=2, sort_keys=True).encode(),
                     to_invoker=True)

    def _entry(self, raw: dict[str, Any]) -> Entry | None:
        """An index entry parsed (None: malformed), once per entry object: an entry is never
        changed in place (a change replaces it)."""
        hit = self._parsed.get(id(raw))
        if hit is not None and hit[0] is raw:
            return hit[1]
        entry: Entry | None
        try:
            desc = Descriptor.from_dict(raw, where="store index entry")
        except ManifestError:
            entry = None
        else:
            entry = Entry(name=desc.annotations.get(REF_NAME, ""), descriptor=desc)
        self._parsed[id(raw)] = (raw, entry)
        return entry

    def entries(self) -> list[Entry]:
        return [e for e in map(self._entry, self._read_index()) if e is not None]

    def resolve(self, name: str) -> Descriptor | None:
        """The descriptor stored under `name` (registry/repository:tag or @digest): a running
        batch's last change of the name, else the index file's entry of that name."""
        batch = self._batch
        if batch is not None:
            with batch.lock:
                changed = name in batch.named
                raw = batch.named.get(name)
            if changed:
                entry = self._entry(raw) if raw is not None else None
                return entry.descriptor if entry is not None else None
        generation, manifests = self._read_index_file()
        names = self._names
        if names is None or names[0] != generation:
            found: dict[str, Entry] = {}
            for parsed in map(self._entry, manifests):
                if parsed is not None:  # the first of a name, as a walk over the entries finds
                    found.setdefault(parsed.name, parsed)
            names = self._names = (generation, found)
        hit = names[1].get(name)
        return hit.descriptor if hit is not None else None

    def find(self, repository: str, digest: str) -> Descriptor | None:
        """An entry of `repository` (registry/repository) that names the manifest `digest`, as
        a walk over `entries()` would find one: among the running batch's changes, else in a
        map of the index file made once per generation (an install asks once per package; a
        walk re-applied the batch's changes to every entry each time)."""
        pointing = self._pointing(repository, digest)
        return pointing[0].descriptor if pointing else None

    def _pointing(self, repository: str, digest: str) -> list[Entry]:
        """The entries of `repository` that name `digest`: the running batch's first, then the
        index file's that the batch did not change."""
        out: list[Entry] = []
        batch = self._batch
        if batch is not None:
            with batch.lock:
                raws = [batch.named.get(n) for n in batch.pointed.get((repository, digest), ())]
            for raw in raws:
                entry = self._entry(raw) if raw is not None else None
                if entry is not None and entry.descriptor.digest == digest:
                    out.append(entry)
        generation, manifests = self._read_index_file()
        found = self._digests
        if found is None or found[0] != generation:
            by: dict[tuple[str, str], list[Entry]] = {}
            for parsed in map(self._entry, manifests):
                if parsed is not None:
                    by.setdefault((parsed.repository, parsed.descriptor.digest), []).append(parsed)
            found = self._digests = (generation, by)
        out.extend(entry for entry in found[1].get((repository, digest), ())
                   if batch is None or entry.name not in batch.named)  # else changed by it
        return out

    def tag(self, name: str, descriptor: Descriptor) -> None:
        """Point `name` at `descriptor` (replacing an older entry of that name). The entry
        carries the verification record of its repository's package `descriptor.digest`, if
        the store has one (never one that came with `descriptor`: only the store's checks
        write records)."""
        self._ensure()
        annotations = {k: v for k, v in descriptor.annotations.items() if k != VERIFICATION}
        annotations[REF_NAME] = name
        record = self._record_text(_repository(name), descriptor.digest, legacy=False)
        if self._batch is None:
            self._marks.pop((_repository(name), descriptor.digest), None)  # on its entry now
        if record is not None:
            annotations[VERIFICATION] = record
        entry = Descriptor(
            media_type=descriptor.media_type,
            digest=descriptor.digest,
            size=descriptor.size,
            annotations=annotations,
            artifact_type=descriptor.artifact_type,
        )
        self._change(name, entry.to_dict())

    def untag(self, name: str) -> bool:
        manifests = self._read_index()
        if not any((m.get("annotations") or {}).get(REF_NAME) == name for m in manifests):
            return False
        self._change(name, None)
        return True

    def _change(self, name: str, entry: dict[str, Any] | None) -> None:
        batch = self._batch
        if batch is not None:
            with batch.lock:
                batch.ops.append((name, entry))
                batch.named[name] = entry
                if entry is not None:
                    key = (_repository(name), str(entry.get("digest")))
                    batch.pointed.setdefault(key, set()).add(name)
            return
        self._write_index(_apply(self._read_index(), [(name, entry)]))

    # -- tag-list cache -----------------------------------------------------------------------

    def _tags_path(self, repository: str) -> str:
        safe = repository.replace(":", "_")
        if ".." in safe.split("/"):
            raise StoreError(f"invalid repository name {repository!r}")
        return os.path.join(self.state_dir, "tags", f"{safe}.json")

    def put_tags(self, repository: str, tags: list[str]) -> None:
        """Remember a repository's tag list (`registry/repository`) for offline resolution."""
        self._ensure()
        self._write(self._tags_path(repository), canonical_json(sorted(set(tags))))

    def tags_cached_at(self, repository: str) -> float | None:
        """When the cached tag list of `repository` was written (seconds), None if never."""
        try:
            return os.stat(self._tags_path(repository)).st_mtime
        except FileNotFoundError:
            return None

    def get_tags(self, repository: str) -> list[str] | None:
        try:
            with open(self._tags_path(repository), "rb") as fh:
                value = json.loads(fh.read())
        except (FileNotFoundError, ValueError):
            return None
        return [t for t in value if isinstance(t, str)] if isinstance(value, list) else None

    # -- verification records -----------------------------------------------------------------

    def verification(self, repository: str, digest: str) -> dict[str, Any] | None:
        """The verification record of `repository`'s package `digest` (a JSON object, as
        `record_verification` was given it), None if there is none. It is kept on the index
        entries that name the package (annotation `dev.ebpm.verification`); a store of the
        old layout kept it in `ebpm/verified/<hex>.json`, read until a record of that digest
        is written."""
        text = self._record_text(repository, digest, legacy=True)
        if text is None:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _record_text(self, repository: str, digest: str, *, legacy: bool) -> str | None:
        """The record as kept: a running batch's mark, else one of this Store's made for a
        package not named then, else the entries' annotation (else the old layout's file)."""
        key = (repository, digest)
        batch = self._batch
        for marks in ((batch.marks,) if batch is not None else ()) + (self._marks,):
            if key in marks:
                return marks[key]
        text = next((e.descriptor.annotations[VERIFICATION] for e in self._pointing(*key)
                     if VERIFICATION in e.descriptor.annotations), None)
        if text is None and legacy:
            found = self._legacy_record(repository, digest)
            return None if found is None else canonical_json(found).decode()
        return text

    def record_verification(self, repository: str, digest: str,
                            record: dict[str, Any] | None) -> None:
        """Keep (None: drop) the verification record of `repository`'s package `digest`, on
        the index entries that name it: inside a batch with the batch's index write, else
        now (under the store lock; durably, as any index write). A record is a cache of the
        check (read only when it matches the policy and signatures): one that a crash lost
        is not read, and the check is made again. No entry names the package yet (a pull
        checks before it names): the entry it is tagged with next gets it."""
        text = None if record is None else canonical_json(record).decode()
        key = (repository, digest)
        self._drop_legacy(digest)
        batch = self._batch
        if batch is not None:
            named, changes = self._marked(key, text)
            with batch.lock:
                batch.marks[key] = text
                if not named:
                    batch.unnamed.add(key)
            for name, raw in changes:
                self._change(name, raw)
            return
        self._marks[key] = text
        if not self._pointing(repository, digest):
            return  # for the entry it is tagged with next
        with self.lock():  # read, change and write the index
            self._marks.pop(key, None)
            changes = self._marked(key, text)[1]
            if changes:
                self._write_index(_apply(self._read_index(), changes))

    def _marked(self, key: tuple[str, str], text: str | None
                ) -> tuple[bool, list[tuple[str, dict[str, Any] | None]]]:
        """Whether an entry names `key`'s package, and those whose record is not `text`,
        changed to it."""
        changes: list[tuple[str, dict[str, Any] | None]] = []
        pointing = self._pointing(*key)
        for entry in pointing:
            annotations = dict(entry.descriptor.annotations)
            if annotations.get(VERIFICATION) == text:
                continue
            if text is None:
                del annotations[VERIFICATION]
            else:
                annotations[VERIFICATION] = text
            raw = entry.descriptor.to_dict()
            raw["annotations"] = annotations
            changes.append((entry.name, raw))
        return bool(pointing), changes

    def clear_verifications(self, digest: str) -> None:
        """Drop every record of the package `digest` that is not on an index entry (the old
        layout's file; records made for a package not named yet): the entries' own go with
        them (`ebpm rm` untags them)."""
        self._drop_legacy(digest)
        for marks in (self._marks, *(() if self._batch is None else (self._batch.marks,))):
            for key in [k for k in marks if k[1] == digest]:
                marks[key] = None

    def _legacy_path(self, digest: str) -> str:
        return os.path.join(self.state_dir, "verified",
                            os.path.basename(self.blob_path(digest)) + ".json")

    def _has_legacy(self) -> bool:
        """Whether the store holds records of the old layout (looked at once per Store)."""
        if self._legacy is None:
            self._legacy = os.path.isdir(os.path.join(self.state_dir, "verified"))
        return self._legacy

    def _legacy_record(self, repository: str, digest: str) -> dict[str, Any] | None:
        """A record of the old layout (`{"v": N, "repositories": {repository: record}}` in
        `ebpm/verified/<hex>.json`), with its file's "v" in it."""
        if not self._has_legacy():
            return None
        try:
            with open(self._legacy_path(digest), "rb") as fh:
                doc = json.loads(fh.read())
        except (FileNotFoundError, ValueError):
            return None
        records = doc.get("repositories") if isinstance(doc, dict) else None
        found = records.get(repository) if isinstance(records, dict) else None
        return {"v": doc.get("v"), **found} if isinstance(found, dict) else None

    def _drop_legacy(self, digest: str) -> None:
        """Remove the old layout's record file of `digest` before a record of it is written
        (so it can never stand for a record dropped since; what it held for other
        repositories is checked again when asked for)."""
        if self._has_legacy():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._legacy_path(digest))

    # -- garbage collection -------------------------------------------------------------------

    def reach(self, descriptor: Descriptor) -> set[str]:
        """The digests an index entry's descriptor keeps: itself, the manifests of an image
        index (e.g. a package's signature referrers), their configs and layers."""
        digest = descriptor.digest
        keep = {digest}
        children = [digest]
        if descriptor.media_type == INDEX_V1:
            from ebpm.oci.referrers import parse_index

            try:
                children = [d.digest for d in parse_index(self.read_blob(digest))]
            except Exception:  # a damaged index keeps only itself
                return keep
            keep.update(children)
        for child in children:
            try:
                _, manifest = self.read_manifest(child)
            except Exception:  # a damaged manifest keeps only itself
                continue
            keep.add(manifest.config.digest)
            keep.update(layer.digest for layer in manifest.layers)
        return keep

    def referenced(self) -> set[str]:
        """Digests reachable from the index: manifests, their configs, layers and subjects."""
        keep: set[str] = set()
        for entry in self.entries():
            keep |= self.reach(entry.descriptor)
        return keep

    def unreferenced(self) -> list[str]:
        """The blob files no index entry reaches (what `prune` deletes)."""
        if not os.path.isdir(self._blobs):
            return []
        keep = {d.partition(":")[2] for d in self.referenced()}
        return [entry.path for entry in os.scandir(self._blobs) if entry.name not in keep]

    def prune(self) -> tuple[int, int]:
        """Delete unreferenced blobs and their verification records; returns (files, bytes)."""
        return self.remove_blobs(self.unreferenced())

    def remove_blobs(self, paths: Iterable[str | os.PathLike[str]]) -> tuple[int, int]:
        """Delete these blob files (from `unreferenced`) and their verification records;
        returns (files, bytes) removed."""
        files = size = 0
        for path in paths:
            try:
                size += os.stat(path).st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            files += 1
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.state_dir, "verified",
                                       f"{os.path.basename(path)}.json"))
        return files, size
