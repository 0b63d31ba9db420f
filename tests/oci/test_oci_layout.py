"""The store: a valid OCI layout, atomic verified writes, verification on every read."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from ebpm.errors import DigestMismatchError, StoreError
from ebpm.oci.layout import Store
from ebpm.oci.model import MANIFEST_V1, Descriptor, sha256_digest


def test_layout_files_and_blob_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    digest = store.write_blob(b"hello")
    assert digest == sha256_digest(b"hello")
    assert json.loads((tmp_path / "s" / "oci-layout").read_text()) == {
        "imageLayoutVersion": "1.0.0"}
    assert json.loads((tmp_path / "s" / "index.json").read_text())["schemaVersion"] == 2
    assert store.read_blob(digest, size=5) == b"hello"
    assert not list((tmp_path / "s" / "blobs" / "sha256").glob(".*tmp"))


def test_write_refuses_wrong_digest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(DigestMismatchError):
        store.write_blob(b"hello", sha256_digest(b"other"))
    assert not store.has_blob(sha256_digest(b"hello"))
    assert not store.has_blob(sha256_digest(b"other"))


def test_read_verifies_again(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.write_blob(b"hello")
    path = Path(store.blob_path(digest))
    path.chmod(0o644)
    path.write_bytes(b"hellp")
    with pytest.raises(DigestMismatchError, match="got digest"):
        store.read_blob(digest)
    with pytest.raises(StoreError, match="missing"):
        store.read_blob(sha256_digest(b"absent"))


def test_index_tagging_and_prune(tmp_path: Path) -> None:
    store = Store(tmp_path)
    config = store.write_blob(b"{}")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_V1,
        "config": {"mediaType": "x", "digest": config, "size": 2}, "layers": []}).encode()
    mdigest = store.write_blob(manifest)
    orphan = store.write_blob(b"orphan")
    name = "localhost:5000/tools/x:1.0.0"
    store.tag(name, Descriptor(MANIFEST_V1, mdigest, len(manifest)))
    assert store.resolve(name) is not None and store.resolve(name).digest == mdigest
    [entry] = store.entries()
    assert (entry.repository, entry.tag) == ("localhost:5000/tools/x", "1.0.0")
    assert store.prune() == (1, 6)
    assert not store.has_blob(orphan) and store.has_blob(config)
    assert store.untag(name) and store.resolve(name) is None
    assert store.prune()[0] == 2


def test_tag_cache(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.get_tags("localhost:5000/x") is None
    store.put_tags("localhost:5000/x", ["1.0.0", "0.1.0", "1.0.0"])
    assert store.get_tags("localhost:5000/x") == ["0.1.0", "1.0.0"]


def test_lock_serializes_index_updates(tmp_path: Path) -> None:
    store = Store(tmp_path)
    digest = store.write_blob(b"m")

    def worker(i: int) -> None:
        for j in range(10):
            with store.lock():
                store.tag(f"localhost:5000/x:{i}.{j}.0", Descriptor(MANIFEST_V1, digest, 1))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.entries()) == 40


def test_skopeo_reads_the_store(tmp_path: Path) -> None:
    """The store is a valid OCI layout: skopeo can inspect an entry by its full name."""
    store = Store(tmp_path / "store")
    config = store.write_blob(b"{}")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_V1,
        "config": {"mediaType": "application/vnd.ebpm.package.config.v1+json",
                   "digest": config, "size": 2}, "layers": []},
        separators=(",", ":")).encode()
    digest = store.write_blob(manifest)
    store.tag("localhost:5000/tools/x:1.0.0", Descriptor(MANIFEST_V1, digest, len(manifest)))
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'store'}:localhost:5000/tools/x:1.0.0"],
        capture_output=True, check=True)
    assert out.stdout == manifest
