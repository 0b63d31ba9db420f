"""cosign both ways, in both storage forms (the `sha256-<hex>.sig` tag and OCI 1.1 referrers
with the fallback tag schema), several signers, and other clients' referrers (an oras-attached
SBOM, cosign's .att/.sbom tags) that must not disturb pull, tags or verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebpm.oci.layout import Store
from ebpm.oci.referrers import COSIGN_SIGNATURE_ARTIFACT, referrers_tag
from ebpm.oci.signature import signature_tag
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.signing import clients
from tests.signing.signing_helpers import make_package_dir


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clients.tool("cosign")
    return clients.client_env(tmp_path)


def _push(capsys: pytest.CaptureFixture[str], tmp: Path, ref: str, *, version: str = "1.0.0"
          ) -> str:
    pkg = make_package_dir(tmp / f"pkg-{ref.replace('/', '_').replace(':', '_')}",
                           version=version)
    r = ebpm(capsys, "push", str(pkg), ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "inspect", "--json", ref)
    assert r.code == 0, r.err
    return str(json.loads(r.out)["digest"])


def _cosign_verify(env: dict[str, str], pub: Path, ref: str, check: bool = True) -> str:
    proc = clients.run("cosign", "verify", "--key", str(pub), "--insecure-ignore-tlog=true",
                       "--insecure-ignore-sct=true", ref, env=env, check=check)
    return proc.stdout + proc.stderr


def _cosign_sign(env: dict[str, str], key: Path, ref: str, *extra: str) -> None:
    clients.run("cosign", "sign", "--key", str(key), "--tlog-upload=false", "--yes", *extra,
                ref, env=dict(env, COSIGN_EXPERIMENTAL="1"))


def test_cosign_verifies_what_ebpm_signed(capsys: pytest.CaptureFixture[str],
                                          registry: Registryd, tmp_path: Path,
                                          env: dict[str, str]) -> None:
    info = keys.generate("ebpm-key")
    ref = f"{registry.host}/cosign/ebpm-signed:1.0.0"
    digest = _push(capsys, tmp_path, ref)
    r = ebpm(capsys, "sign", "--key", "ebpm-key", ref)
    assert r.code == 0, r.err
    out = _cosign_verify(env, info.public_path, f"{registry.host}/cosign/ebpm-signed@{digest}")
    assert "The signatures were verified against the specified public key" in out
    assert f'"docker-manifest-digest":"{digest}"' in out
    # another key's verification fails in cosign too
    other = keys.generate("other")
    out = _cosign_verify(env, other.public_path, f"{registry.host}/cosign/ebpm-signed@{digest}",
                         check=False)
    assert "no matching signatures" in out


def test_ebpm_referrer_has_cosigns_shape(capsys: pytest.CaptureFixture[str],
                                         registry: Registryd, tmp_path: Path,
                                         env: dict[str, str]) -> None:
    """`ebpm sign --referrers` writes what `cosign sign --registry-referrers-mode=oci-1-1` does:
    a manifest with cosign's artifact type and a subject, listed in the fallback tag's index;
    oras and regctl discover it. (This cosign build cannot verify referrers itself.)"""
    info = keys.generate("ebpm-key")
    repo = f"{registry.host}/cosign/ebpm-referrer"
    digest = _push(capsys, tmp_path, f"{repo}:1.0.0")
    r = ebpm(capsys, "sign", "--referrers", "--key", "ebpm-key", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    assert "signature referrer sha256:" in r.out
    again = ebpm(capsys, "sign", "--referrers", "--key", "ebpm-key", f"{repo}:1.0.0")
    assert "already signed by this key" in again.out
    tags = clients.run("crane", "ls", repo, env=env).stdout.split()
    assert referrers_tag(digest) in tags and signature_tag(digest) not in tags
    r = ebpm(capsys, "inspect", "--json", f"{repo}:1.0.0")
    assert json.loads(r.out)["signed"] is True
    found = json.loads(clients.run("oras", "discover", "--plain-http", "-o", "json",
                                   f"{repo}@{digest}", env=env).stdout)
    kinds = [m.get("artifactType") for m in found.get("manifests") or found.get("referrers")]
    assert kinds == [COSIGN_SIGNATURE_ARTIFACT]
    clients.run("regctl", "registry", "set", "--tls", "disabled", registry.host, env=env)
    listed = clients.run("regctl", "artifact", "list", "--format", "{{json .}}",
                         f"{repo}@{digest}", env=env).stdout
    assert COSIGN_SIGNATURE_ARTIFACT in listed
    # cosign's own referrer of another package has the same shape
    key, _ = clients.cosign_keys(tmp_path, env)
    other = _push(capsys, tmp_path, f"{repo}:2.0.0", version="2.0.0")
    _cosign_sign(env, key, f"{repo}@{other}", "--registry-referrers-mode=oci-1-1")
    ours = _referrer(env, repo, digest)
    theirs = _referrer(env, repo, other)
    for doc in (ours, theirs):
        assert doc["config"]["mediaType"] == COSIGN_SIGNATURE_ARTIFACT
        assert [x["mediaType"] for x in doc["layers"]] == [
            "application/vnd.dev.cosign.simplesigning.v1+json"]
        assert "dev.cosignproject.cosign/signature" in doc["layers"][0]["annotations"]
    assert ours["subject"]["digest"] == digest and theirs["subject"]["digest"] == other
    # pulled into an empty store, the referrer verifies, then offline too
    trust.add_trust(f"{registry.host}/cosign/**", info.public_path)
    r = ebpm(capsys, "pull", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    assert f"signed by {info.key_id}" in r.out
    r = ebpm(capsys, "inspect", "--local", "--json", f"{repo}:1.0.0")
    assert json.loads(r.out)["signed"] is True
    r = ebpm(capsys, "list", "--json")
    assert [p["signed"] for p in json.loads(r.out)] == [True]


def _referrer(env: dict[str, str], repo: str, digest: str) -> dict[str, object]:
    index = json.loads(clients.run("crane", "manifest", f"{repo}:{referrers_tag(digest)}",
                                   env=env).stdout)
    [entry] = index["manifests"]
    return dict(json.loads(clients.run("crane", "manifest", f"{repo}@{entry['digest']}",
                                       env=env).stdout))


def test_ebpm_verifies_what_cosign_signed(capsys: pytest.CaptureFixture[str],
                                          registry: Registryd, tmp_path: Path,
                                          env: dict[str, str]) -> None:
    key, pub = clients.cosign_keys(tmp_path, env)
    trust.add_trust(f"{registry.host}/signed-by-cosign/**", pub)
    repo = f"{registry.host}/signed-by-cosign/demo"
    tagged = _push(capsys, tmp_path, f"{repo}:1.0.0")
    referred = _push(capsys, tmp_path, f"{repo}:2.0.0", version="2.0.0")
    _cosign_sign(env, key, f"{repo}@{tagged}")
    _cosign_sign(env, key, f"{repo}@{referred}", "--registry-referrers-mode=oci-1-1")
    tags = clients.run("crane", "ls", repo, env=env).stdout.split()
    assert signature_tag(tagged) in tags and referrers_tag(referred) in tags
    assert signature_tag(referred) not in tags
    for version in ("1.0.0", "2.0.0"):
        r = ebpm(capsys, "pull", f"{repo}:{version}")
        assert r.code == 0, r.err
        r = ebpm(capsys, "--offline", "verify", "--json", f"{repo}:{version}")
        assert r.code == 0, r.err
        assert json.loads(r.out)["status"] == "verified"
    # a referrer-only signature the policy does not trust is refused, naming why
    trust.remove_trust(f"{registry.host}/signed-by-cosign/**")
    keys.generate("unrelated")
    trust.add_trust(f"{registry.host}/signed-by-cosign/**",
                    keys.keys_dir() / "unrelated.pub")
    r = ebpm(capsys, "verify", f"{repo}:2.0.0")
    assert r.code != 0
    assert "not made by a key trusted" in r.err


def test_two_signers_in_the_referrers_index(capsys: pytest.CaptureFixture[str],
                                            registry: Registryd, tmp_path: Path,
                                            env: dict[str, str]) -> None:
    """cosign and ebpm both add referrers to the fallback index; either key verifies, and a
    policy trusting only one of them lists the other as ignored."""
    key, pub = clients.cosign_keys(tmp_path, env)
    mine = keys.generate("mine")
    repo = f"{registry.host}/two/demo"
    digest = _push(capsys, tmp_path, f"{repo}:1.0.0")
    _cosign_sign(env, key, f"{repo}@{digest}", "--registry-referrers-mode=oci-1-1")
    r = ebpm(capsys, "sign", "--referrers", "--key", "mine", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    index = json.loads(clients.run("crane", "manifest", f"{repo}:{referrers_tag(digest)}",
                                   env=env).stdout)
    assert len(index["manifests"]) == 2
    trust.add_trust(f"{registry.host}/two/**", mine.public_path)
    r = ebpm(capsys, "pull", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", "--json", f"{repo}:1.0.0")
    result = json.loads(r.out)
    assert [s["key_id"] for s in result["signers"]] == [mine.key_id]
    assert any("not made by a key trusted" in x for x in result["rejected"])
    trust.add_trust(f"{registry.host}/two/**", pub)
    r = ebpm(capsys, "--offline", "verify", "--json", f"{repo}:1.0.0")
    assert len(json.loads(r.out)["signers"]) == 2


def test_sbom_attestation_and_sbom_tags_do_not_disturb(capsys: pytest.CaptureFixture[str],
                                                       registry: Registryd, tmp_path: Path,
                                                       env: dict[str, str]) -> None:
    info = keys.generate("k")
    trust.add_trust(f"{registry.host}/sbom/**", info.public_path)
    repo = f"{registry.host}/sbom/demo"
    digest = _push(capsys, tmp_path, f"{repo}:1.0.0")
    r = ebpm(capsys, "sign", "--key", "k", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text('{"spdxVersion": "SPDX-2.3", "name": "demo"}')
    clients.run("oras", "attach", "--plain-http", "--disable-path-validation",
                "--artifact-type", "application/spdx+json",
                f"{repo}@{digest}", f"{sbom}:application/spdx+json", env=env)
    clients.run("cosign", "attach", "sbom", "--sbom", str(sbom), f"{repo}@{digest}", env=env)
    key, _ = clients.cosign_keys(tmp_path, env)
    predicate = tmp_path / "predicate.json"
    predicate.write_text('{"builder": "test"}')
    clients.run("cosign", "attest", "--key", str(key), "--tlog-upload=false", "--yes",
                "--type", "custom", "--predicate", str(predicate), f"{repo}@{digest}", env=env)
    tags = clients.run("crane", "ls", repo, env=env).stdout.split()
    hexpart = digest.partition(":")[2]
    assert {f"sha256-{hexpart}", f"sha256-{hexpart}.sig", f"sha256-{hexpart}.att",
            f"sha256-{hexpart}.sbom"} <= set(tags)
    r = ebpm(capsys, "tags", "--json", repo)
    assert r.code == 0, r.err
    assert json.loads(r.out) == ["1.0.0"]
    r = ebpm(capsys, "pull", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", "--json", f"{repo}:1.0.0")
    result = json.loads(r.out)
    assert result["status"] == "verified" and result["rejected"] == []
    # the SBOM referrer is not kept in the store; only signatures are
    store = Store()
    assert store.resolve(f"{repo}:{referrers_tag(digest)}") is None
    r = ebpm(capsys, "list", "--json")
    assert [p["reference"] for p in json.loads(r.out)] == [f"{repo}:1.0.0"]


def test_referrer_signatures_survive_save_load_and_prune(capsys: pytest.CaptureFixture[str],
                                                         registry: Registryd, tmp_path: Path,
                                                         env: dict[str, str],
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    key, pub = clients.cosign_keys(tmp_path, env)
    trust.add_trust(f"{registry.host}/gap/**", pub)
    repo = f"{registry.host}/gap/demo"
    digest = _push(capsys, tmp_path, f"{repo}:1.0.0")
    _cosign_sign(env, key, f"{repo}@{digest}", "--registry-referrers-mode=oci-1-1")
    r = ebpm(capsys, "pull", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    r = ebpm(capsys, "cache", "prune")
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    archive = tmp_path / "gap.tar"
    r = ebpm(capsys, "save", f"{repo}:1.0.0", "-o", str(archive))
    assert r.code == 0, r.err
    assert r.out.splitlines()[0] == f"saved {repo}:1.0.0"
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "air-gapped"))
    r = ebpm(capsys, "load", str(archive))
    assert r.code == 0, r.err
    assert "verified" in r.out
    r = ebpm(capsys, "--offline", "verify", f"{repo}:1.0.0")
    assert r.code == 0, r.err


def test_skopeo_verifies_what_ebpm_signed(capsys: pytest.CaptureFixture[str],
                                          registry: Registryd, tmp_path: Path) -> None:
    """containers/image's `sigstoreSigned` policy (matchRepository) accepts ebpm's signature:
    the exact `skopeo copy` of docs/signing.md, with the ebpm public key, and refuses another."""
    clients.tool("skopeo-sigstore")
    env = clients.client_env(tmp_path)
    info = keys.generate("ebpm-key")
    other = keys.generate("other")
    repo = f"{registry.host}/skopeo-verify/demo"
    _push(capsys, tmp_path, f"{repo}:1.0.0")
    r = ebpm(capsys, "sign", "--key", "ebpm-key", f"{repo}:1.0.0")
    assert r.code == 0, r.err
    (tmp_path / "registries.d").mkdir()
    (tmp_path / "registries.d" / "ebpm.yaml").write_text(
        "default-docker:\n  use-sigstore-attachments: true\n")
    for n, (pub, ok) in enumerate(((info.public_path, True), (other.public_path, False))):
        policy = tmp_path / f"policy-{n}.json"
        policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {
            "docker": {repo: [{"type": "sigstoreSigned", "keyPath": str(pub),
                               "signedIdentity": {"type": "matchRepository"}}]}}}))
        proc = clients.run("skopeo-sigstore", "--policy", str(policy), "--registries.d",
                           str(tmp_path / "registries.d"), "copy", "--src-tls-verify=false",
                           "--remove-signatures", f"docker://{repo}:1.0.0",
                           f"dir:{tmp_path / f'copy-{n}'}", env=env, check=False)
        assert (proc.returncode == 0) == ok, proc.stderr
        if not ok:
            assert "signature verification failed" in proc.stderr
