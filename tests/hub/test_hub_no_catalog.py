"""A registry that lists no catalog to us (token auth, anonymous: pull only, as ghcr.io): a
catalog source fails in one line with the way out, and named repositories index fine."""

from __future__ import annotations

import json

import pytest

from ebpm.oci.auth import Credentials
from ebpm.oci.remote import Registry
from tests.cli import ebpm
from tests.hub.helpers import package_config
from tests.oci.conftest import PASSWORD, USER, token_registry  # noqa: F401 - the fixture

pytestmark = pytest.mark.registry


def test_registry_without_catalog_needs_named_repositories(
        token_registry: object, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1, README_TYPE

    host = token_registry.host  # type: ignore[attr-defined]
    config = package_config("nocat", description="Indexed without a catalog")
    artifact = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "nocat.bpf.o", b"\x7fELF x"),
                                       Layer(README_TYPE, "README.md", b"# nocat\n")],
                    annotations={"org.opencontainers.image.version": "1.0.0"})
    with Registry(host, credentials=Credentials(USER, PASSWORD)) as client:  # alice pushes
        for blob in artifact.blobs:
            client.push_blob("org/nocat", blob.descriptor.digest, blob.data)
        client.put_manifest("org/nocat", "1.0.0", artifact.manifest_bytes, MANIFEST_V1)

    r = ebpm(capsys, "hub", "refresh", host)  # anonymous: no registry:catalog:* for us
    assert r.code == 1
    lines = r.err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"error: hub refresh {host}: {host} does not list its "
                               "repositories to us")
    assert lines[1].startswith(f"hint: name them one by one, `ebpm hub refresh {host}/REPOSITORY`")

    r = ebpm(capsys, "hub", "refresh", f"{host}/org/nocat", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["added"] == [f"{host}/org/nocat@{artifact.digest}"]
    r = ebpm(capsys, "search", "catalog", "--json")
    assert [h["repository"] for h in json.loads(r.out)] == [f"{host}/org/nocat"]
