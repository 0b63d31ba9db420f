"""The store's verification records (issue 18): kept on the index entries that name a package
(annotation dev.ebpm.verification), written with the index, never taken from a descriptor that
came from elsewhere; a store of the old layout (a file per package under ebpm/verified/) still
reads until a record of that package is written."""

from __future__ import annotations

import json
from pathlib import Path

from ebpm.oci.layout import VERIFICATION, Store
from ebpm.oci.model import MANIFEST_V1, Descriptor, sha256_digest

RECORD = {"v": 2, "policy": "sha256:" + "1" * 64, "signature": "sha256:" + "2" * 64}


def _package(store: Store, body: bytes = b"a package") -> Descriptor:
    store.write_blob(body)
    return Descriptor(MANIFEST_V1, sha256_digest(body), len(body))


def _index(store: Store) -> list[dict[str, object]]:
    return json.loads((Path(store.root) / "index.json").read_text())["manifests"]


def test_a_record_lives_on_the_entries_that_name_the_package(tmp_path: Path) -> None:
    """A pull checks, then names: the record made before the name goes on the entry; any
    entry of that repository naming the package carries it, another repository's does not;
    the index is written once and no file of its own is created."""
    store = Store(tmp_path / "store")
    desc = _package(store)
    index = Path(store.root) / "index.json"
    before = index.stat().st_ino
    with store.batch():
        store.record_verification("r/x", desc.digest, RECORD)
        assert store.verification("r/x", desc.digest) == RECORD  # the batch sees its own
        store.tag("r/x:1", desc)
        store.tag("r/y:1", desc)
        assert index.stat().st_ino == before
    assert not (Path(store.state_dir) / "verified").exists()
    again = Store(store.root)
    assert again.verification("r/x", desc.digest) == RECORD
    assert again.verification("r/y", desc.digest) is None
    annotations = {m["annotations"]["org.opencontainers.image.ref.name"]: m["annotations"]
                   for m in _index(again)}  # type: ignore[index]
    assert json.loads(annotations["r/x:1"][VERIFICATION]) == RECORD
    assert VERIFICATION not in annotations["r/y:1"]
    # named again (a re-pull whose check the record answered): the record stays
    again.tag("r/x:1", desc)
    again.tag("r/x@" + desc.digest, desc)
    assert Store(store.root).verification("r/x", desc.digest) == RECORD
    # dropped: from every entry of the repository; and gone with the entries
    again.record_verification("r/x", desc.digest, None)
    assert Store(store.root).verification("r/x", desc.digest) is None
    again.record_verification("r/x", desc.digest, RECORD)
    again.untag("r/x:1")
    again.untag("r/x@" + desc.digest)
    assert Store(store.root).verification("r/x", desc.digest) is None


def test_a_record_that_comes_with_a_descriptor_is_not_taken(tmp_path: Path) -> None:
    """Only the store's own checks write records: an annotation of that name on a descriptor
    from elsewhere (an archive's index, a registry's referrers) is dropped when it is named."""
    store = Store(tmp_path / "store")
    desc = _package(store)
    forged = Descriptor(desc.media_type, desc.digest, desc.size,
                        annotations={VERIFICATION: json.dumps(RECORD)})
    store.tag("r/x:1", forged)
    assert store.verification("r/x", desc.digest) is None
    assert VERIFICATION not in _index(store)[0]["annotations"]  # type: ignore[operator]


def test_a_record_made_outside_a_batch_before_the_name_goes_on_the_entry(
        tmp_path: Path) -> None:
    """`ebpm load` checks a package, then names it, outside a batch; a package already named
    gets the record at once (the index written under the store lock)."""
    store = Store(tmp_path / "store")
    desc = _package(store)
    store.record_verification("r/x", desc.digest, RECORD)
    assert not (Path(store.root) / "index.json").exists() or not _index(store)
    store.tag("r/x:1", desc)
    assert Store(store.root).verification("r/x", desc.digest) == RECORD
    other = _package(store, b"another")
    store.tag("r/x:2", other)
    store.record_verification("r/x", other.digest, RECORD)
    assert Store(store.root).verification("r/x", other.digest) == RECORD


def test_an_old_stores_record_files_still_read_until_a_record_is_written(
        tmp_path: Path) -> None:
    """The old layout's `ebpm/verified/<hex>.json` ({"v", "repositories"}) is read as it was;
    writing or dropping a record of that package removes the file, so a record dropped
    since can never come back from it."""
    store = Store(tmp_path / "store")
    desc = _package(store)
    store.tag("r/x:1", desc)
    legacy = Path(store.state_dir) / "verified" / (desc.digest.partition(":")[2] + ".json")
    legacy.parent.mkdir()
    body = {k: v for k, v in RECORD.items() if k != "v"}
    legacy.write_text(json.dumps({"v": 2, "repositories": {"r/x": body, "r/y": body}}))
    old = Store(store.root)
    assert old.verification("r/x", desc.digest) == RECORD
    assert old.verification("r/y", desc.digest) == RECORD
    assert old.verification("r/z", desc.digest) is None
    old.record_verification("r/x", desc.digest, None)
    assert not legacy.exists()
    assert Store(store.root).verification("r/x", desc.digest) is None
    assert Store(store.root).verification("r/y", desc.digest) is None  # checked again
