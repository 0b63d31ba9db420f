"""Keyless (Sigstore) verification offline, with real bundles and trusted roots from
sigstore-python's test assets (tests/data/sigstore-python), through `sigstore`'s verifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebpm.access import registry_for
from ebpm.errors import SignatureError
from ebpm.oci.model import (
    EMPTY_CONFIG_TYPE,
    INDEX_V1,
    MANIFEST_V1,
    Descriptor,
    Manifest,
    sha256_digest,
)
from ebpm.oci.referrers import build_index, referrers_tag
from ebpm.trust import policy as trust
from ebpm.trust.keyless import verify_bundle
from ebpm.trust.policy import KeylessIdentity
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.signing import clients
from tests.signing.signing_helpers import make_package_dir
from tests.signing.sigstore_pki import (
    BUNDLE_V01,
    BUNDLE_V02,
    BUNDLE_V03,
    PrivateSigstore,
    in_toto_statement,
)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "sigstore-python"
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
    assert _verify(name, root, KeylessIdentity(identity=who, issuer=issuer)) == who
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
    assert _verify("bundle_v3_github.whl", PRODUCTION, rule) == WORKFLOW
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


# -- end to end: bundles as referrers of a package, verified from the store -------------------

ME, ISSUER = "dev@example.com", "https://issuer.example"


@pytest.fixture(scope="module")
def sigstore() -> PrivateSigstore:
    return PrivateSigstore()


def _keyless_rule(scope: str, root: Path | None = None, **identity: str) -> None:
    """A policy rule trusting a keyless identity (the root defaults to the config dir's)."""
    path = Path(trust.user_policy_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = ", ".join(f"{k} = '{v}'" for k, v in (identity or {
        "identity": ME, "issuer": ISSUER}).items())
    text = path.read_text() if path.exists() else ""
    path.write_text(text + f'\n[[trust]]\nscope = "{scope}"\nkeyless = [{{ {entry} }}]\n'
                    + (f'trusted_root = "{root}"\n' if root else ""))


def _push(capsys: pytest.CaptureFixture[str], tmp: Path, ref: str) -> tuple[str, bytes]:
    pkg = make_package_dir(tmp / ref.replace("/", "_").replace(":", "_"))
    r = ebpm(capsys, "push", str(pkg), ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "inspect", "--json", ref)
    digest = json.loads(r.out)["digest"]
    registry, _, rest = ref.partition("/")
    data, _, _ = registry_for(registry).get_manifest(rest.rsplit(":", 1)[0], digest)
    return digest, data


def attach_bundle(ref: str, digest: str, size: int, bundle: bytes, media_type: str) -> str:
    """Attach `bundle` as cosign does (OCI 1.1 bundle spec): an artifact manifest with the
    bundle's media type, the empty config, the bundle as its layer and the package as its
    subject, listed in the fallback tag's index (this registry has no referrers API)."""
    registry, _, rest = ref.partition("/")
    repo = rest.rsplit(":", 1)[0]
    client = registry_for(registry)
    empty = b"{}"
    client.push_blob(repo, sha256_digest(empty), empty)
    client.push_blob(repo, sha256_digest(bundle), bundle)
    manifest = Manifest(
        config=Descriptor(EMPTY_CONFIG_TYPE, sha256_digest(empty), len(empty)),
        layers=(Descriptor(media_type, sha256_digest(bundle), len(bundle)),),
        artifact_type=media_type, subject=Descriptor(MANIFEST_V1, digest, size),
    ).to_bytes()
    put = client.put_manifest(repo, sha256_digest(manifest), manifest, MANIFEST_V1)
    current = [d for d in client.referrers(repo, digest)]
    client.put_manifest(repo, referrers_tag(digest), build_index(
        [*current, Descriptor(MANIFEST_V1, put, len(manifest), artifact_type=media_type)]),
        INDEX_V1)
    return put


@pytest.mark.parametrize("media_type", [BUNDLE_V01, BUNDLE_V02, BUNDLE_V03])
def test_keyless_bundle_referrer_pull_and_verify_offline(
        media_type: str, capsys: pytest.CaptureFixture[str], registry: Registryd,
        tmp_path: Path, sigstore: PrivateSigstore) -> None:
    from ebpm import config

    sigstore.write_root(Path(config.config_dir()) / "sigstore" / "trusted_root.json")
    ref = f"{registry.host}/keyless/msg-{media_type[-3:]}:1.0.0"
    digest, manifest = _push(capsys, tmp_path, ref)
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0  # no rule yet: nothing is trusted
    _keyless_rule(f"{registry.host}/keyless/**")
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0 and "not signed" in r.err
    attach_bundle(ref, digest, len(manifest),
                  sigstore.message_bundle(manifest, ME, ISSUER, media_type=media_type),
                  media_type)
    r = ebpm(capsys, "pull", ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", ref)
    assert r.code == 0, r.err
    assert f"signed by keyless:{ME} (issuer {ISSUER}) for {ref.rsplit(':', 1)[0]}" in r.out


def test_keyless_dsse_statement_and_identity_rules(capsys: pytest.CaptureFixture[str],
                                                    registry: Registryd, tmp_path: Path,
                                                    sigstore: PrivateSigstore) -> None:
    """cosign's current form: a DSSE-wrapped in-toto statement naming the manifest digest."""
    root = sigstore.write_root(tmp_path / "pinned" / "root.json")
    ref = f"{registry.host}/keyless/dsse:1.0.0"
    digest, manifest = _push(capsys, tmp_path, ref)
    name = ref.rsplit(":", 1)[0]
    statement = in_toto_statement(name, digest)
    attach_bundle(ref, digest, len(manifest), sigstore.dsse_bundle(
        "application/vnd.in-toto+json", statement, "https://ci.example/release@refs/tags/v1",
        "https://token.ci.example"), BUNDLE_V03)
    # the wrong identity is refused, naming who signed and what the policy wanted
    _keyless_rule(f"{registry.host}/keyless/**", root, identity=ME, issuer=ISSUER)
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0
    assert "certificate identity https://ci.example/release@refs/tags/v1" in r.err
    assert "is not one the policy trusts" in r.err
    Path(trust.user_policy_path()).unlink()
    _keyless_rule(f"{registry.host}/keyless/**", root,
                  identity_regexp=r"https://ci\.example/.*@refs/tags/v.*",
                  issuer="https://token.ci.example")
    r = ebpm(capsys, "pull", ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", "--json", ref)
    [signer] = json.loads(r.out)["signers"]
    assert signer["kind"] == "keyless" and signer["docker_reference"] == name
    # a statement about another digest, or another repository, does not count
    other = f"{registry.host}/keyless/dsse-copy:1.0.0"
    digest2, manifest2 = _push(capsys, tmp_path, other)
    attach_bundle(other, digest2, len(manifest2), sigstore.dsse_bundle(
        "application/vnd.in-toto+json", in_toto_statement(name, digest2),
        "https://ci.example/release@refs/tags/v1", "https://token.ci.example"), BUNDLE_V03)
    r = ebpm(capsys, "pull", other)
    assert r.code != 0 and "signed for another repository" in r.err
    # a changed trusted root makes the cached verification check again, and fail
    root.write_bytes(PrivateSigstore().trusted_root())
    r = ebpm(capsys, "--offline", "verify", ref)
    assert r.code != 0 and "keyless verification failed" in r.err


def test_keyless_cached_path_imports_no_sigstore(capsys: pytest.CaptureFixture[str],
                                                 registry: Registryd, tmp_path: Path,
                                                 sigstore: PrivateSigstore) -> None:
    from ebpm import config

    sigstore.write_root(Path(config.config_dir()) / "sigstore" / "trusted_root.json")
    _keyless_rule(f"{registry.host}/keyless/**")
    ref = f"{registry.host}/keyless/cached:1.0.0"
    digest, manifest = _push(capsys, tmp_path, ref)
    attach_bundle(ref, digest, len(manifest), sigstore.message_bundle(manifest, ME, ISSUER),
                  BUNDLE_V03)
    r = ebpm(capsys, "pull", ref)
    assert r.code == 0, r.err
    code = ("import sys; from ebpm.transfer.pull import pull; "
            f"p = pull({ref!r}); assert p.verification.cached; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sigstore', 'cryptography', 'requests', 'pydantic')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, EBPM_OFFLINE="1"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    # `ebpm verify` takes the signatures from the record, --fresh checks them again, and the
    # package's bytes are checked every time
    r = ebpm(capsys, "--offline", "verify", "--json", ref)
    assert r.code == 0, r.err
    assert json.loads(r.out)["cached"] is True
    r = ebpm(capsys, "--offline", "verify", "--fresh", "--json", ref)
    assert r.code == 0, r.err
    assert json.loads(r.out)["cached"] is False
    from ebpm.oci.layout import Store

    store = Store()
    layer = Manifest.from_bytes(manifest).layers[0]
    path = Path(store.blob_path(layer.digest))
    path.chmod(0o644)
    path.write_bytes(b"\x7fELF tampered")
    r = ebpm(capsys, "--offline", "verify", ref)
    assert r.code != 0


def _legacy_signature(registry: Registryd, repo: str, digest: str, signature: str,
                      annotations: dict[str, str], payload: bytes) -> None:
    """A `.sig` manifest with one keyless layer, as legacy `cosign sign` (keyless) writes."""
    from ebpm.oci import signature as sig

    layer = Descriptor("application/vnd.dev.cosign.simplesigning.v1+json",
                       sha256_digest(payload), len(payload),
                       annotations={sig.SIGNATURE_ANNOTATION: signature, **annotations})
    data, config = sig.build_manifest((layer,))
    client = registry_for(registry.host)
    client.push_blob(repo, sha256_digest(payload), payload)
    client.push_blob(repo, sha256_digest(config), config)
    client.put_manifest(repo, sig.signature_tag(digest), data, MANIFEST_V1)


def test_legacy_keyless_needs_opt_in_then_verifies(capsys: pytest.CaptureFixture[str],
                                                   registry: Registryd, tmp_path: Path,
                                                   sigstore: PrivateSigstore) -> None:
    """cosign's legacy keyless layer (certificate, chain, Rekor bundle with a signed entry
    timestamp and no inclusion proof): refused with the reason unless the rule says
    `legacy_keyless = true`; then chain, SCT, SET, consistency and signature are checked."""
    from ebpm import config
    from ebpm.oci import signature as sig

    sigstore.write_root(Path(config.config_dir()) / "sigstore" / "trusted_root.json")
    ref = f"{registry.host}/legacy/demo:1.0.0"
    digest, _ = _push(capsys, tmp_path, ref)
    payload = sig.make_payload(ref.rsplit(":", 1)[0], digest)
    signature, annotations = sigstore.cosign_legacy(payload, ME, ISSUER)
    _legacy_signature(registry, "legacy/demo", digest, signature, annotations, payload)
    _keyless_rule(f"{registry.host}/legacy/**")
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0
    assert "a keyless signature in cosign's legacy form (certificate dev@example.com" in r.err
    assert "legacy_keyless = true" in r.err
    policy = Path(trust.user_policy_path())
    policy.write_text(policy.read_text() + "legacy_keyless = true\n")
    r = ebpm(capsys, "pull", ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", "--fresh", ref)
    assert r.code == 0, r.err
    assert f"signed by keyless:{ME} (issuer {ISSUER})" in r.out
    # another payload under the same log entry, and another CA's root, are refused
    other = sig.make_payload(ref.rsplit(":", 1)[0] + "x", digest)
    _legacy_signature(registry, "legacy/demo", digest, signature, annotations, other)
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0 and "signed for another repository" in r.err
    _legacy_signature(registry, "legacy/demo", digest, signature, annotations, payload)
    PrivateSigstore().write_root(Path(config.config_dir()) / "sigstore" / "trusted_root.json")
    r = ebpm(capsys, "pull", ref)
    assert r.code != 0 and "keyless verification failed" in r.err


def test_legacy_keyless_checks(tmp_path: Path, sigstore: PrivateSigstore) -> None:
    from ebpm.trust.keyless import verify_cosign_legacy

    root = sigstore.write_root(tmp_path / "root.json")
    payload = b'{"critical": {}}'
    signature, annotations = sigstore.cosign_legacy(payload, ME, ISSUER)
    rule = (KeylessIdentity(identity=ME, issuer=ISSUER),)
    who = verify_cosign_legacy(payload, signature, annotations, identities=rule,
                               trusted_root=root, where="sig")
    assert who.identity == ME and who.issuer == ISSUER
    with pytest.raises(SignatureError, match="another signature, key or payload"):
        verify_cosign_legacy(b"other", signature, annotations, identities=rule,
                             trusted_root=root, where="sig")
    with pytest.raises(SignatureError, match="is not one the policy trusts"):
        verify_cosign_legacy(payload, signature, annotations, trusted_root=root, where="sig",
                             identities=(KeylessIdentity(identity=ME, issuer="https://x"),))
    bad = dict(annotations)
    bad["dev.sigstore.cosign/bundle"] = bad["dev.sigstore.cosign/bundle"].replace(
        '"logIndex": 7', '"logIndex": 8')
    with pytest.raises(SignatureError, match="keyless verification failed"):
        verify_cosign_legacy(payload, signature, bad, identities=rule, trusted_root=root,
                             where="sig")
    other_sig, _ = sigstore.cosign_legacy(payload, ME, ISSUER)
    with pytest.raises(SignatureError, match="another signature, key or payload"):
        verify_cosign_legacy(payload, other_sig, annotations, identities=rule,
                             trusted_root=root, where="sig")


def test_oras_attached_bundle_verifies(capsys: pytest.CaptureFixture[str],
                                       registry: Registryd, tmp_path: Path,
                                       sigstore: PrivateSigstore) -> None:
    """The referrer made by a real client (`oras attach`) with the bundle media type."""
    from ebpm import config

    env = clients.client_env(tmp_path)
    clients.tool("oras")
    sigstore.write_root(Path(config.config_dir()) / "sigstore" / "trusted_root.json")
    _keyless_rule(f"{registry.host}/keyless/**")
    ref = f"{registry.host}/keyless/oras:1.0.0"
    digest, manifest = _push(capsys, tmp_path, ref)
    bundle = tmp_path / "sig.sigstore.json"
    bundle.write_bytes(sigstore.message_bundle(manifest, ME, ISSUER))
    clients.run("oras", "attach", "--plain-http", "--disable-path-validation",
                "--artifact-type", BUNDLE_V03, f"{ref.rsplit(':', 1)[0]}@{digest}",
                f"{bundle}:{BUNDLE_V03}", env=env)
    r = ebpm(capsys, "pull", ref)
    assert r.code == 0, r.err
    assert "keyless" in ebpm(capsys, "--offline", "verify", ref).out
