"""TLS with a test CA: verified with the CA given explicitly (even with REQUESTS_CA_BUNDLE set),
refused without it, and allowed unverified only with insecure."""

from __future__ import annotations

import pytest

from ebpm.errors import RegistryError
from ebpm.oci.model import sha256_digest
from ebpm.oci.remote import Registry


@pytest.fixture(autouse=True)
def _system_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    # The environment's CA bundle would override Session.verify; the client must not let it.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")


def test_tls_with_the_test_ca(tls_registry) -> None:
    data = b"over TLS"
    with Registry(tls_registry.host, ca_bundle=tls_registry.ca_file) as client:
        assert client.base_url == f"https://{tls_registry.host}"
        client.ping()
        client.push_blob("tls/x", sha256_digest(data), data)
        assert client.get_blob("tls/x", sha256_digest(data)) == data


def test_tls_refused_without_the_ca(tls_registry) -> None:
    with pytest.raises(RegistryError) as info, Registry(tls_registry.host) as client:
        client.ping()
    assert info.value.code == "TLS"
    assert "TLS verification" in str(info.value)
    assert info.value.hint and "--ca-file" in info.value.hint


def test_insecure_skips_verification(tls_registry) -> None:
    with Registry(tls_registry.host, insecure=True) as client:
        client.ping()


def test_run_url_takes_the_access_of_its_flags(tls_registry, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    """`ebpm run URL` reaches the URL with the face's one RegistryAccess: --ca-file, --insecure,
    --offline (a registry's /v2/ answers JSON: a download that got through is no package)."""
    from tests.cli import ebpm

    url = f"https://{tls_registry.host}/v2/"
    u = "--allow-unsigned"  # an object by URL needs a #sha256= pin or this
    r = ebpm(capsys, "run", u, url)
    assert r.code == 1 and "TLS verification" in r.err
    r = ebpm(capsys, "run", u, "--ca-file", tls_registry.ca_file, url)
    assert r.code != 0 and "not a BPF object" in r.err, r.err
    r = ebpm(capsys, "run", u, "--insecure", url)
    assert r.code != 0 and "not a BPF object" in r.err, r.err
    r = ebpm(capsys, "--offline", "run", u, "--ca-file", tls_registry.ca_file, url)
    assert r.code != 0 and "offline" in r.err, r.err
