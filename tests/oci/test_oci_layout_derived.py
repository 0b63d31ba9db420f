"""Blobs the store keeps no file of (issue 18): a cosign `.sig` entry's config and payload are
made from its manifest and its name when read (annotation dev.ebpm.derived), checked by
digest like any blob; an annotation that names something its manifest does not make gives
nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpm.digests import sha256_digest
from ebpm.errors import StoreError
from ebpm.oci import signature as sig
from ebpm.oci.layout import DERIVED, Store
from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE, MANIFEST_V1, Descriptor

REPO = "localhost:5000/tools/demo"
SUBJECT = "sha256:" + "ab" * 32


def _signature(store: Store, repository: str = REPO) -> tuple[Descriptor, bytes, bytes]:
    """A cosign signature manifest of REPO@SUBJECT stored alone (no config or payload file):
    its descriptor as a pull tags it, and the config's and payload's bytes."""
    payload = sig.make_payload(sig.docker_reference(repository), SUBJECT)
    layer = Descriptor(COSIGN_SIMPLESIGNING_TYPE, sha256_digest(payload), len(payload),
                       annotations={sig.SIGNATURE_ANNOTATION: "MEUCIQ=="})
    manifest, config = sig.build_manifest((layer,))
    store.write_blob(manifest)
    derived = f"{sha256_digest(config)} {layer.digest}"
    return (Descriptor(MANIFEST_V1, sha256_digest(manifest), len(manifest),
                       annotations={DERIVED: derived}), config, payload)


def test_a_signatures_config_and_payload_are_made_when_read(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    desc, config, payload = _signature(store)
    store.tag(f"{REPO}:{sig.signature_tag(SUBJECT)}", desc)
    again = Store(store.root)
    for data in (config, payload):
        digest = sha256_digest(data)
        assert not os.path.exists(again.blob_path(digest))
        assert again.read_blob(digest, size=len(data)) == data
        assert not again.holds(digest)  # (a writer's question: is the file there)
    assert sorted(again.reach(desc)) == sorted(
        [desc.digest, sha256_digest(config), sha256_digest(payload)])


def test_what_a_manifest_does_not_make_is_missing(tmp_path: Path) -> None:
    """The annotation only says where to look: a digest the manifest and name do not make
    (another repository's payload, a forged list, an entry that is no `.sig` tag) stays
    missing."""
    store = Store(tmp_path / "store")
    desc, config, payload = _signature(store, repository="localhost:5000/tools/other")
    store.tag(f"{REPO}:{sig.signature_tag(SUBJECT)}", desc)  # signs another repository
    with pytest.raises(StoreError, match="is missing"):
        store.read_blob(sha256_digest(payload))
    assert store.read_blob(sha256_digest(config)) == config  # the config is the layers'
    forged = Descriptor(desc.media_type, desc.digest, desc.size,
                        annotations={DERIVED: desc.digest + " sha256:" + "0" * 64})
    store.tag(f"{REPO}:elsewhere", forged)
    with pytest.raises(StoreError, match="is missing"):
        store.read_blob("sha256:" + "0" * 64)

