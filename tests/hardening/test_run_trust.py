"""Issue 13, item 6: `ebpm run --allow-unsigned` warns, and an object fetched by URL goes
through the trust policy (a #sha256= pin or --allow-unsigned), the registries' http/TLS rules
(no plain http to another machine, no https->http redirect) and a size cap."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.errors import DigestMismatchError, RegistryError, SignatureError, TooLargeError
from ebpm.run import resolve_target
from tests.cli import ebpm
from tests.hostile import Hostile, redirect, send, zeros
from tests.oci.conftest import _cert, _new_key, _pem_cert, _pem_key

OBJECT = b"\x7fELF\x02\x01\x01" + bytes(11) + (247).to_bytes(2, "little") + bytes(64)
PIN = hashlib.sha256(OBJECT).hexdigest()


@pytest.fixture
def files(hostile: Hostile) -> Hostile:
    hostile.on("GET", r"/x\.bpf\.o", lambda h, m: send(h, 200, OBJECT))
    hostile.on("GET", r"/big\.bpf\.o", zeros(65 << 20))
    return hostile


def test_run_allow_unsigned_warns(capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "run", "--allow-unsigned", "127.0.0.1:1/r:1.0.0")
    assert "warning: --allow-unsigned: signatures are not enforced" in r.err


def test_a_url_needs_a_pin_or_allow_unsigned(files: Hostile, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = f"{files.url}/x.bpf.o"
    with pytest.raises(SignatureError, match="an object fetched by URL carries no signature"):
        resolve_target(url)
    assert not files.requests("GET", r"/x\.bpf\.o")  # refused before any download
    r = ebpm(capsys, "run", url)
    assert r.code == 1 and "#sha256=HEX" in r.err and "--allow-unsigned" in r.err
    r = ebpm(capsys, "export", url, "-o", str(tmp_path / "x.json"))  # (its hint named `ebpm run`)
    assert r.code == 1 and f"'{url}#sha256=HEX'" in r.err and "ebpm run" not in r.err
    assert resolve_target(f"{url}#sha256={PIN}").object == OBJECT
    assert resolve_target(url, allow_unsigned=True).object == OBJECT


def test_a_wrong_pin_is_refused(files: Hostile) -> None:
    with pytest.raises(DigestMismatchError, match=f"pinned sha256:{'0' * 64}"):
        resolve_target(f"{files.url}/x.bpf.o#sha256={'0' * 64}")


def test_a_url_has_a_size_cap(files: Hostile) -> None:
    with pytest.raises(TooLargeError, match="EBPM_MAX_URL_SIZE"):
        resolve_target(f"{files.url}/big.bpf.o", allow_unsigned=True)


def test_plain_http_to_another_machine_is_refused() -> None:
    with pytest.raises(RegistryError, match="plain http to example.invalid refused"):
        resolve_target("http://example.invalid/x.bpf.o", allow_unsigned=True)


@pytest.fixture
def tls_hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hostile]:
    ca_key, key = _new_key(), _new_key()
    ca = _cert(ca_key, "ebpm test CA", ca_key, "ebpm test CA", ca=True)
    leaf = _cert(key, "127.0.0.1", ca_key, "ebpm test CA", ca=False, san_ip="127.0.0.1")
    (tmp_path / "ca.pem").write_bytes(_pem_cert(ca))
    (tmp_path / "leaf.pem").write_bytes(_pem_cert(leaf))
    (tmp_path / "leaf.key").write_bytes(_pem_key(key))
    monkeypatch.setenv("EBPM_CA_FILE", str(tmp_path / "ca.pem"))
    server = Hostile(tls=(str(tmp_path / "leaf.pem"), str(tmp_path / "leaf.key"))).start()
    yield server
    server.stop()


def test_no_redirect_from_https_to_http(tls_hostile: Hostile) -> None:
    tls_hostile.on("GET", r"/x\.bpf\.o", redirect("http://example.invalid/x.bpf.o"))
    with pytest.raises(RegistryError, match="refusing redirect from https to plain http"):
        resolve_target(f"{tls_hostile.url}/x.bpf.o", allow_unsigned=True)


def test_https_to_a_plain_http_server_says_so(files: Hostile,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """An https URL whose server answers in plain http is a protocol mismatch, not a
    certificate to verify (was "TLS verification ... failed" with a --ca-file hint)."""
    url = files.url.replace("http://", "https://", 1) + f"/x.bpf.o#sha256={PIN}"
    r = ebpm(capsys, "run", url)
    assert r.code == 1 and "answers in plain http, not https" in r.err, r.err
    assert "--ca-file" not in r.err and "http://" in r.err


def test_a_url_that_is_not_there_gets_a_hint(files: Hostile,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "run", f"{files.url}/nothing.bpf.o#sha256={PIN}")
    assert r.code == 1 and "HTTP 404" in r.err and "hint: check the URL" in r.err, r.err
