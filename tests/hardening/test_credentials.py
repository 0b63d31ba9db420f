"""Issue 13, items 7 and 8: credentials go only to the registry's own token realm, never over
plain http to another machine, and never live inside a registry address."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest

from ebpm.errors import AuthError, InvalidReferenceError
from ebpm.oci.auth import Credentials, lookup
from ebpm.oci.reference import parse, parse_registry
from ebpm.oci.remote import Registry
from ebpm.oci.transport import Transport
from tests.cli import ebpm
from tests.hostile import Hostile, send

ALICE = Credentials("alice", "s3cret", "", "test")


@pytest.fixture
def realm() -> Iterator[Hostile]:
    """A token server bound to `localhost` (another host name than 127.0.0.1) that records
    the Authorization it receives and hands out a token to anyone."""
    server = Hostile(bind="localhost").start()
    server.on("GET", r"/token.*", lambda h, m: send(h, 200, b'{"token":"t"}',
                                                    {"Content-Type": "application/json"}))
    yield server
    server.stop()


def _bearer_registry(server: Hostile, realm_url: str) -> None:
    def v2(h, m) -> None:  # noqa: ANN001
        if h.headers.get("Authorization") == "Bearer t":
            return send(h, 200, b"{}")
        send(h, 401, b"", {"WWW-Authenticate": f'Bearer realm="{realm_url}",service="s"'})

    server.on("GET", r"/v2/", v2)


def test_credentials_never_go_to_a_foreign_realm(hostile: Hostile, realm: Hostile,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    _bearer_registry(hostile, f"{realm.url}/token")
    with caplog.at_level(logging.WARNING):
        Registry(hostile.host, credentials=ALICE).ping()
        Registry(hostile.host, credentials=ALICE).ping()
    asked = realm.requests("GET", r"/token.*")
    assert asked and all("Authorization" not in s.headers for s in asked)
    warnings = [r.getMessage() for r in caplog.records if "token realm" in r.getMessage()]
    assert len(warnings) == 1  # once per realm
    assert "not sending your" in warnings[0] and f"EBPM_AUTH_REALMS={hostile.host}=localhost" \
        in warnings[0]


def test_credentials_go_to_a_configured_realm(hostile: Hostile, realm: Hostile,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBPM_AUTH_REALMS", f"{hostile.host}=localhost")
    _bearer_registry(hostile, f"{realm.url}/token")
    Registry(hostile.host, credentials=ALICE).ping()
    sent = realm.requests("GET", r"/token.*")[-1].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_credentials_go_to_the_registrys_own_host(hostile: Hostile) -> None:
    _bearer_registry(hostile, f"{hostile.url}/token")  # same host, as ghcr.io does it
    hostile.on("GET", r"/token.*", lambda h, m: send(h, 200, b'{"token":"t"}'))
    Registry(hostile.host, credentials=ALICE).ping()
    assert "Authorization" in hostile.requests("GET", r"/token.*")[-1].headers


def test_never_over_plain_http_to_a_remote_host(monkeypatch: pytest.MonkeyPatch) -> None:
    transport = Transport("registry.example", credentials=ALICE)
    assert transport._realm_trusted("https://registry.example/token")
    assert not transport._realm_trusted("http://registry.example/token")
    monkeypatch.setenv("EBPM_AUTH_REALMS", "registry.example=auth.example")
    assert transport._realm_trusted("https://auth.example/token")
    assert not transport._realm_trusted("http://auth.example/token")
    assert not transport._realm_trusted("https://evil.example/token")


def test_a_file_realm_is_refused(hostile: Hostile) -> None:
    _bearer_registry(hostile, "file:///etc/passwd")
    with pytest.raises(AuthError, match="token realm 'file:///etc/passwd', which is not an "
                                        "http\\(s\\) URL"):
        Registry(hostile.host, credentials=ALICE).ping()


def test_userinfo_in_login_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "login", "https://alice:hunter2@registry.example", "-u", "alice",
             "--password-stdin")
    assert r.code == 2
    assert "hunter2" not in r.err + r.out
    assert "registry 'https://***@registry.example': credentials in the address are refused" \
        in r.err
    assert "-u USER --password-stdin" in r.err
    assert lookup("registry.example") is None


def test_userinfo_in_references_is_refused() -> None:
    with pytest.raises(InvalidReferenceError, match="credentials in a reference") as info:
        parse("alice:hunter2@localhost:5000/r:1.0.0")
    assert "hunter2" not in str(info.value)
    assert parse_registry("HTTPS://Registry.Example:5000/v2/") == "registry.example:5000"
