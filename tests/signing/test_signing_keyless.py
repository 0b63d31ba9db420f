"""Keyless (Sigstore) verification offline, with real bundles and trusted roots from
sigstore-python's test assets (tests/corpus/sigstore-python), through `sigstore`'s verifier."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.errors import SignatureError
from ebpm.trust.keyless import verify_bundle
from ebpm.trust.policy import KeylessIdentity

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "sigstore-python"
ASSETS = CORPUS / "test" / "assets"
STAGING = next((ASSETS / "staging-tuf" / "targets").glob("*.trusted_root.json"))
PRODUCTION = next((CORPUS / "sigstore" / "_store").glob("*/trusted_root.json"))
GITHUB = "https://github.com/login/oauth"
ACTIONS = "https://token.actions.githubusercontent.com"
WORKFLOW = ("https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml"
            "@refs/tags/v0.1.2")

CASES = [  # artifact, trusted root, signer, issuer (bundle versions v0.1, v0.3, v0.3 alt, v0.2)
    ("bundle.txt", STAGING, "a@tny.town", GITHUB),
    ("bundle_v3.txt", STAGING, "william@yossarian.net", GITHUB),
    ("bundle_v3_alt.txt", STAGING, "william@yossarian.net", GITHUB),
    ("bundle_v3_github.whl", PRODUCTION, WORKFLOW, ACTIONS),
]


def _verify(name: str, root: Path, *identities: KeylessIdentity,
            artifact: bytes | None = None) -> str:
    data = (ASSETS / name).read_bytes() if artifact is None else artifact
    signer = verify_bundle((ASSETS / f"{name}.sigstore").read_bytes(), data,
                           identities=identities, trusted_root=root, where=name)
    return signer.identity


@pytest.mark.parametrize("name, root, who, issuer", CASES)
def test_real_bundles_verify_offline(name: str, root: Path, who: str, issuer: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # no network: any attempt to connect fails the test
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("keyless verification tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert _verify(name, root, KeylessIdentity(identity=who, issuer=issuer)).startswith(who)
    assert _verify(name, root, KeylessIdentity(identity_regexp=".*", issuer_regexp=r"https://.*"))


@pytest.mark.parametrize("name, root, who, issuer", CASES[:1] + CASES[3:])
def test_refused(name: str, root: Path, who: str, issuer: str) -> None:
    other_root = PRODUCTION if root == STAGING else STAGING
    with pytest.raises(SignatureError, match="is not one the policy trusts"):
        _verify(name, root, KeylessIdentity(identity="someone@else", issuer=issuer))
    with pytest.raises(SignatureError, match="is not one the policy trusts"):
        _verify(name, root, KeylessIdentity(identity=who, issuer="https://other.example"))
    with pytest.raises(SignatureError, match="keyless verification failed"):
        _verify(name, root, KeylessIdentity(identity=who, issuer=issuer), artifact=b"tampered")
    with pytest.raises(SignatureError, match="keyless verification failed"):
        _verify(name, other_root, KeylessIdentity(identity=who, issuer=issuer))


def test_regexp_identity_for_a_workflow() -> None:
    rule = KeylessIdentity(identity_regexp=r"https://github\.com/trailofbits/.*",
                           issuer=ACTIONS)
    assert _verify("bundle_v3_github.whl", PRODUCTION, rule).startswith("~")
    with pytest.raises(SignatureError):
        _verify("bundle_v3_github.whl", PRODUCTION,
                KeylessIdentity(identity_regexp=r"https://github\.com/other/.*", issuer=ACTIONS))


def test_broken_bundle_and_root(tmp_path: Path) -> None:
    bad = tmp_path / "root.json"
    bad.write_text("{}")
    with pytest.raises(SignatureError, match="trusted root .* cannot be used"):
        _verify("bundle.txt", bad, KeylessIdentity(identity="a@tny.town", issuer=GITHUB))
    with pytest.raises(SignatureError, match="not a valid Sigstore bundle"):
        verify_bundle(b'{"mediaType": "nope"}', b"", identities=(), trusted_root=STAGING)
