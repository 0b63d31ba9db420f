"""Bearer-token auth as ghcr.io does it, against a real registry with `auth: token` and a JWT
token server written in the tests."""

from __future__ import annotations

import pytest

from ebpm.errors import AuthError
from ebpm.oci.auth import Credentials
from ebpm.oci.model import MANIFEST_V1, canonical_json, sha256_digest
from ebpm.oci.remote import Registry, check_credentials
from tests.oci.conftest import IDENTITY_TOKEN, PASSWORD, USER

ALICE = Credentials(USER, PASSWORD, source="test")


def _publish(client: Registry, repo: str, tag: str) -> tuple[str, bytes]:
    layer, config = f"layer of {repo}".encode(), b"{}"
    for blob in (layer, config):
        client.push_blob(repo, sha256_digest(blob), blob)
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": MANIFEST_V1,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": sha256_digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/octet-stream", "digest": sha256_digest(layer),
                    "size": len(layer)}],
    })
    return client.put_manifest(repo, tag, manifest, MANIFEST_V1), layer


def test_login_push_pull_with_a_token_cached_per_scope(token_registry) -> None:
    with Registry(token_registry.host, credentials=ALICE) as client:
        client.ping()
        digest, layer = _publish(client, "token/alice", "1.0.0")
        before = len(token_registry.issued)
        for _ in range(3):
            assert client.get_manifest("token/alice", "1.0.0")[2] == digest
            assert client.get_blob("token/alice", sha256_digest(layer)) == layer
        assert len(token_registry.issued) - before <= 1  # one pull token, then the cache
        assert client.list_tags("token/alice") == ["1.0.0"]
        assert "token/alice" in client.catalog()
        client.delete_manifest("token/alice", digest)
        assert client.head_manifest("token/alice", "1.0.0") is None
    users = {t["user"] for t in token_registry.issued}
    assert USER in users


def test_anonymous_pull_gets_a_pull_only_token(token_registry) -> None:
    with Registry(token_registry.host, credentials=ALICE) as client:
        digest, _ = _publish(client, "token/public", "2.0.0")
    with Registry(token_registry.host) as anonymous:
        assert anonymous.get_manifest("token/public", "2.0.0")[2] == digest
    last = token_registry.issued[-1]
    assert last["user"] == ""
    assert last["access"] == [{"type": "repository", "name": "token/public", "actions": ["pull"]}]


def test_anonymous_push_is_insufficient_scope(token_registry) -> None:
    with Registry(token_registry.host) as anonymous, pytest.raises(AuthError) as info:
        anonymous.push_blob("token/anon", sha256_digest(b"x"), b"x")
    assert info.value.code == "insufficient_scope"
    assert info.value.hint and "ebpm login" in info.value.hint


def test_wrong_credentials_at_the_token_server(token_registry) -> None:
    wrong = Credentials(USER, "guess", source="test")
    with pytest.raises(AuthError, match="wrong credentials") as info:
        check_credentials(token_registry.host, wrong)
    assert "guess" not in f"{info.value} {info.value.hint}"


def test_identity_token_refresh_grant(token_registry) -> None:
    creds = Credentials(identity_token=IDENTITY_TOKEN, source="test")
    with Registry(token_registry.host, credentials=creds) as client:
        _publish(client, "token/identity", "1.0.0")
    assert token_registry.issued[-1]["user"] == USER


def test_no_secret_in_debug_logs(token_registry, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    creds = Credentials(identity_token=IDENTITY_TOKEN, source="test")
    with Registry(token_registry.host, credentials=ALICE) as client:
        _publish(client, "token/logs", "1.0.0")
    with Registry(token_registry.host, credentials=creds) as client:
        client.list_tags("token/logs")
    assert "GET" in caplog.text  # the transport did log its requests
    for secret in (PASSWORD, IDENTITY_TOKEN, "Bearer ", "Basic ", "eyJ"):  # eyJ: any JWT
        assert secret not in caplog.text
