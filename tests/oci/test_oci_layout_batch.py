"""The store's batch mode (issue 18): index changes written once at the end, files flushed
together; a process killed (SIGKILL) at any moment leaves an index that names only complete,
intact blobs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ebpm.oci.layout import Store
from ebpm.oci.model import MANIFEST_V1, Descriptor, sha256_digest

ROOT = Path(__file__).resolve().parents[2]


def _desc(data: bytes) -> Descriptor:
    return Descriptor(MANIFEST_V1, sha256_digest(data), len(data))


def test_a_batch_writes_the_index_once_at_the_end(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    store.tag("r/x:0", _desc(store_blob(store, b"zero")))
    index = Path(store.root) / "index.json"
    before = index.stat().st_ino
    with store.batch():
        for i in range(5):
            data = f"blob {i}".encode()
            store.write_blob(data)
            store.tag(f"r/x:{i + 1}", _desc(data))
        store.untag("r/x:0")
        assert index.stat().st_ino == before  # nothing written yet (replacing changes inode)
        names = {e.name for e in store.entries()}  # the batch sees its own changes
        assert names == {f"r/x:{i + 1}" for i in range(5)}
        assert store.resolve("r/x:0") is None  # by name too: the batch's last change counts
        assert store.resolve("r/x:3").digest == _desc(b"blob 2").digest  # type: ignore[union-attr]
        store.tag("r/x:3", _desc(b"blob 4"))
        assert store.resolve("r/x:3").digest == _desc(b"blob 4").digest  # type: ignore[union-attr]
        assert Store(store.root).resolve("r/x:0") is not None  # the file: not yet changed
    assert index.stat().st_ino != before
    assert {e.name for e in Store(store.root).entries()} == names


def test_a_batch_commits_what_succeeded_when_the_block_fails(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    try:
        with store.batch():
            data = b"kept"
            store.write_blob(data)
            store.tag("r/kept:1", _desc(data))
            raise RuntimeError("a later package failed")
    except RuntimeError:
        pass
    assert [e.name for e in Store(store.root).entries()] == ["r/kept:1"]


def test_a_batch_lays_a_new_store_out_with_its_files(tmp_path: Path, monkeypatch: Any) -> None:
    """A first pull lays the store out inside its batch: `oci-layout` is made durable with the
    batch's files and `index.json` (the mark of a store laid out) is written at the end; no
    fsync of their own on the way. A store whose first batch never ended (killed) has no
    index: it is laid out again, whatever its `oci-layout` holds."""
    synced: list[int] = []
    fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    store = Store(tmp_path / "store")
    with store.batch():
        data = store_blob(store, b"first")
        store.tag("r/first:1", _desc(data))
        assert (Path(store.root) / "oci-layout").is_file()
        assert not (Path(store.root) / "index.json").exists()
        assert synced == []
    assert len(synced) == 2 + 2 + 2  # 2 files and 2 directories, then index.json and its directory
    layout = Path(store.root) / "oci-layout"
    assert json.loads(layout.read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert [e.name for e in Store(store.root).entries()] == ["r/first:1"]

    again = Store(tmp_path / "killed")
    Path(again.root).mkdir()
    (Path(again.root) / "oci-layout").write_text("")  # a first batch cut short by a crash
    again.write_blob(b"x")
    layout = Path(again.root) / "oci-layout"
    assert json.loads(layout.read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((Path(again.root) / "index.json").read_text())["manifests"] == []


def test_the_threads_of_a_batch_lay_a_new_store_out_once(tmp_path: Path,
                                                        monkeypatch: Any) -> None:
    """An install's workers all reach a new store's layout at once: one of them writes
    `oci-layout`, the others wait for it (each file created is costly: a file system walks
    its free inodes for each)."""
    import threading

    store = Store(tmp_path / "store")
    written: list[str] = []
    write = Store._write

    def slow(self: Store, path: str, data: bytes, **kw: Any) -> None:
        written.append(os.path.basename(path))
        time.sleep(0.05)  # the window in which the other threads arrive
        write(self, path, data, **kw)

    monkeypatch.setattr(Store, "_write", slow)
    start = threading.Barrier(6)

    def worker(i: int) -> None:
        start.wait()
        store_blob(store, f"blob {i}".encode())

    with store.batch():
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert written.count("oci-layout") == 1, written
    assert len([p for p in (Path(store.root) / "blobs" / "sha256").iterdir()]) == 6


def test_find_names_a_digest_as_a_walk_over_the_entries_does(tmp_path: Path) -> None:
    """`find(repository, digest)` (a pull of REF@DIGEST whose tag the store lacks) answers
    as `entries()` would, inside a batch and out, without walking every entry."""
    store = Store(tmp_path / "store")
    one, two = _desc(store_blob(store, b"one")), _desc(store_blob(store, b"two"))

    def walk(repository: str, digest: str) -> Descriptor | None:
        return next((e.descriptor for e in store.entries()
                     if e.repository == repository and e.descriptor.digest == digest), None)

    def same() -> None:
        for repository in ("r/x", "r/y", "r/x:1"):
            for d in (one.digest, two.digest):
                assert (store.find(repository, d) is None) == (walk(repository, d) is None), (
                    repository, d)

    store.tag("r/x:1", one)
    store.tag("r/y@" + two.digest, two)
    same()
    assert store.find("r/x", one.digest) is not None and store.find("r/x", two.digest) is None
    with store.batch():
        store.tag("r/x:1", two)  # moved within the batch: the file's entry no longer counts
        same()
        assert store.find("r/x", one.digest) is None
        store.tag("r/x:2", one)
        store.untag("r/y@" + two.digest)
        same()
        assert store.find("r/x", one.digest) is not None
        assert store.find("r/y", two.digest) is None
    same()
    assert store.find("r/x", two.digest) is not None


def test_a_layout_another_tool_made_takes_a_pull(tmp_path: Path) -> None:
    """skopeo's `oci:DIR` has oci-layout, index.json and blobs but no ebpm/ state directory."""
    root = tmp_path / "skopeo"
    root.mkdir()
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (root / "index.json").write_text('{"schemaVersion":2,"manifests":[]}')
    store = Store(root)
    with store.staging() as staging:
        (Path(staging) / "x").write_bytes(b"x")
        assert store.adopt_blob(Path(staging) / "x", sha256_digest(b"x"))
    assert store.holds(sha256_digest(b"x"))


def store_blob(store: Store, data: bytes) -> bytes:
    store.write_blob(data)
    return data


WRITER = r"""
import os, sys
sys.path.insert(0, sys.argv[2])
from ebpm.oci.layout import Store
from ebpm.oci.model import MANIFEST_V1, Descriptor, sha256_digest
store = Store(sys.argv[1])
round_ = 0
while True:
    round_ += 1
    with store.batch():
        for i in range(20):
            data = os.urandom(20000 + i)
            with store.lock():
                store.write_blob(data)
                store.tag(f"r/p{i}:{round_}", Descriptor(MANIFEST_V1, sha256_digest(data),
                                                          len(data)))
    print(round_, flush=True)
"""


def test_sigkill_at_any_moment_leaves_a_consistent_store(tmp_path: Path) -> None:
    rng = random.Random(18)
    root = tmp_path / "store"
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(ROOT)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        proc.stdout.readline()  # at least one batch committed
        time.sleep(rng.uniform(0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        store = Store(root)
        entries = store.entries()
        assert entries, "committed batches are in the index"
        for entry in entries:  # every named blob is there, whole (verified on read)
            assert store.holds(entry.descriptor.digest, entry.descriptor.size), entry.name


def test_threads_of_one_process_take_the_store_lock_in_turn(tmp_path: Path,
                                                              monkeypatch: Any) -> None:
    """An install's workers queue for the store lock on a lock of their own: the file lock is
    taken once per holder, never polled for by a thread of the same process (a poll sleeps
    20 ms), and a thread holding it may take it again (a nested use does not wait on itself)."""
    import fcntl
    import threading

    polls: list[int] = []
    flock = fcntl.flock

    def counting(fd: int, op: int) -> None:
        try:
            flock(fd, op)
        except BlockingIOError:
            polls.append(op)
            raise

    monkeypatch.setattr(fcntl, "flock", counting)
    store = Store(tmp_path / "s")
    inside: list[int] = []
    overlap: list[bool] = []

    def work(n: int) -> None:
        other = Store(tmp_path / "s")  # another Store object on the same root: the same lock
        for _ in range(20):
            with other.lock():
                inside.append(n)
                overlap.append(len(inside) > 1)
                with other.lock():  # nested: taken again at once
                    pass
                inside.remove(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert polls == [] and not any(overlap)
    with store.lock():
        pass


def test_a_batch_removes_dead_processes_staging_once(tmp_path: Path, monkeypatch: Any) -> None:
    """The staging directories a killed process left behind are removed by the next batch, once
    (not again for each of its threads' own staging directories), and a live process's kept."""
    import threading

    store = Store(tmp_path / "store")
    store_blob(store, b"laid out")
    dead = Path(store.state_dir) / "staging-999999999-0123456789ab"  # above any pid_max: gone
    dead.mkdir()
    (dead / "half-downloaded").write_bytes(b"x")
    live = Path(store.state_dir) / f"staging-{os.getppid()}-0123456789ab"
    live.mkdir()
    sweeps: list[int] = []
    sweep = Store.remove_stale_staging

    def counted(self: Store) -> list[Path]:
        sweeps.append(1)
        return sweep(self)

    monkeypatch.setattr(Store, "remove_stale_staging", counted)
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        with store.staging() as staging:
            (Path(staging) / "x").write_bytes(b"x")

    with store.batch():
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sweeps == [1]
    assert not dead.exists() and live.is_dir()
    mine = f"staging-{os.getpid()}"
    assert not [p for p in Path(store.state_dir).iterdir() if p.name.startswith(mine)]
