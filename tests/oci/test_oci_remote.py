"""The registry client against a real distribution registry: every endpoint, exact bytes,
digest checks, 404s, the size cap, offline refusal and an unreachable registry."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpm.errors import (
    DigestMismatchError,
    NotFoundError,
    OfflineError,
    TooLargeError,
    UnreachableError,
    UsageError,
)
from ebpm.oci.model import EMPTY_CONFIG_TYPE, MANIFEST_V1, canonical_json, sha256_digest
from ebpm.oci.remote import Registry
from ebpm.versions import sorted_versions
from tests.registryd import Registryd, free_port

pytestmark = pytest.mark.registry


def _manifest(config: bytes, layer: bytes, *, note: str = "") -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V1,
        "artifactType": "application/vnd.ebpm.package.v1",
        "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": sha256_digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256_digest(layer),
                    "size": len(layer)}],
    }
    if note:
        doc["annotations"] = {"note": note}
    return canonical_json(doc)


def _publish(client: Registry, repo: str, tag: str, layer: bytes, note: str = "") -> str:
    config = b"{}"
    client.push_blob(repo, sha256_digest(config), config)
    client.push_blob(repo, sha256_digest(layer), layer)
    return client.put_manifest(repo, tag, _manifest(config, layer, note=note), MANIFEST_V1)


@pytest.fixture
def client(registry: Registryd) -> Registry:
    with Registry(registry.host) as c:
        yield c


def test_ping_and_plain_http_for_loopback(client: Registry, registry: Registryd) -> None:
    assert client.base_url == f"http://{registry.host}"
    client.ping()


def test_non_loopback_defaults_to_https() -> None:
    assert Registry("ghcr.io").base_url == "https://ghcr.io"
    assert Registry("example.com:5000", insecure=True).base_url == "http://example.com:5000"


def test_monolithic_blob_upload_and_verified_download(client: Registry) -> None:
    data = os.urandom(3000)
    digest = sha256_digest(data)
    assert not client.blob_exists("remote/mono", digest)
    seen: list[int] = []
    assert client.push_blob("remote/mono", digest, data, progress=seen.append) is True
    assert sum(seen) == len(data)
    assert client.blob_exists("remote/mono", digest)
    got: list[int] = []
    assert client.get_blob("remote/mono", digest, size=len(data), progress=got.append) == data
    assert sum(got) == len(data)
    assert client.push_blob("remote/mono", digest, data) is False  # already there: a no-op


def test_chunked_blob_upload(client: Registry) -> None:
    data = os.urandom(10_000)
    digest = sha256_digest(data)
    seen: list[int] = []
    client.push_blob("remote/chunked", digest, data, chunk_size=4096, progress=seen.append)
    assert seen == [4096, 4096, 1808]
    assert client.get_blob("remote/chunked", digest, size=len(data)) == data


def test_push_refuses_data_that_does_not_match_its_digest(client: Registry) -> None:
    with pytest.raises(DigestMismatchError):
        client.push_blob("remote/bad", sha256_digest(b"a"), b"b")


def test_cross_repository_mount(client: Registry) -> None:
    data = os.urandom(500)
    digest = sha256_digest(data)
    client.push_blob("remote/mount-src", digest, data)
    assert client.mount_blob("remote/mount-dst", digest, "remote/mount-src") is True
    assert client.blob_exists("remote/mount-dst", digest)
    other = os.urandom(100)
    # Unknown in the source: the registry opens an upload instead, push_blob completes it.
    assert client.mount_blob("remote/mount-dst", sha256_digest(other), "remote/mount-src") is False
    assert client.push_blob("remote/mount-dst2", sha256_digest(other), other,
                            mount_from="remote/nope") is True
    mounted = client.push_blob("remote/mount-dst3", digest, data, mount_from="remote/mount-src")
    assert mounted is False and client.blob_exists("remote/mount-dst3", digest)
    assert client.get_blob("remote/mount-dst2", sha256_digest(other)) == other


def test_manifest_put_get_head_exact_bytes(client: Registry) -> None:
    layer = os.urandom(64)
    digest = _publish(client, "remote/manifest", "1.0.0", layer)
    config = b"{}"
    data = _manifest(config, layer)
    assert digest == sha256_digest(data)
    got, media_type, got_digest = client.get_manifest("remote/manifest", "1.0.0")
    assert (got, media_type, got_digest) == (data, MANIFEST_V1, digest)
    assert client.get_manifest("remote/manifest", digest)[0] == data
    head = client.head_manifest("remote/manifest", "1.0.0")
    assert head is not None
    assert (head.digest, head.size, head.media_type) == (digest, len(data), MANIFEST_V1)
    assert client.head_manifest("remote/manifest", "9.9.9") is None


def test_manifest_size_cap(client: Registry) -> None:
    _publish(client, "remote/cap", "1.0.0", b"x")
    with pytest.raises(TooLargeError, match="cap"):
        client.get_manifest("remote/cap", "1.0.0", max_size=100)


def test_unknown_tag_and_repository_are_not_found(client: Registry) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_manifest("remote/unknown", "1.0.0")
    assert info.value.status == 404 and info.value.code
    assert info.value.hint and "ebpm tags" in info.value.hint
    with pytest.raises(NotFoundError):
        client.list_tags("remote/unknown")
    with pytest.raises(NotFoundError):
        client.get_blob("remote/unknown", sha256_digest(b"nothing"))


def test_tags_catalog_and_sorted_versions(client: Registry) -> None:
    for tag in ("1.10.0", "1.2.0", "latest", "1.2.0-rc.1", "0.1.0_build.5"):
        _publish(client, "remote/tags", tag, b"layer-" + tag.encode(), note=tag)
    tags = client.list_tags("remote/tags")
    assert sorted(tags) == sorted(["1.10.0", "1.2.0", "latest", "1.2.0-rc.1", "0.1.0_build.5"])
    assert sorted_versions(tags) == ["0.1.0_build.5", "1.2.0-rc.1", "1.2.0", "1.10.0"]
    assert "remote/tags" in client.catalog()


def test_delete_by_digest_only(client: Registry) -> None:
    digest = _publish(client, "remote/delete", "1.0.0", b"to be deleted")
    with pytest.raises(UsageError, match="by digest"):
        client.delete_manifest("remote/delete", "1.0.0")
    client.delete_manifest("remote/delete", digest)
    assert client.head_manifest("remote/delete", "1.0.0") is None
    with pytest.raises(NotFoundError):
        client.delete_manifest("remote/delete", digest)


def test_offline_refuses_before_any_request(
    registry: Registryd, monkeypatch: pytest.MonkeyPatch, tiny_server
) -> None:
    server = tiny_server(lambda h, seen: h.reply(h, 200, b"{}"))
    monkeypatch.setenv("EBPM_OFFLINE", "1")
    for host in (registry.host, server.host):
        with pytest.raises(OfflineError, match="offline"):
            Registry(host).get_manifest("remote/x", "1.0.0")
        with pytest.raises(OfflineError):
            Registry(host).ping()
    assert server.seen == []


def test_registry_down_is_unreachable_at_once() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(UnreachableError) as info:
        Registry(host).ping()
    assert str(info.value) == f"registry {host} unreachable: connection refused"
    assert info.value.hint and "ebpm registry up" in info.value.hint


@given(st.one_of(st.text(max_size=20), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}",
                                                      fullmatch=True),
                 st.from_regex(r"sha256:[a-f0-9]{64}", fullmatch=True)))
def test_a_reference_in_a_path_is_quoted_as_quote_does(reference: str) -> None:
    """A tag or digest goes into the URL as urllib.parse.quote(safe=":") would write it (a
    valid one as it is: no urllib.parse import on a pull)."""
    from urllib.parse import quote

    want = f"/v2/r/manifests/{quote(reference, safe=':')}" if reference else "/v2/r/manifests/"
    assert Registry._path("r", "manifests", reference) == want
