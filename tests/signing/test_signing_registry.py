"""Signing against a real registry: push --sign, several signers, verification on pull and
offline, and the attacks of issue 3 through the real pull path (nothing stored, nothing marked)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ebpm.access import registry_for
from ebpm.errors import DigestMismatchError, NotFoundError, PolicyError, SignatureError
from ebpm.oci import signature as sig
from ebpm.oci.artifact import Artifact
from ebpm.oci.layout import Store
from ebpm.oci.model import MANIFEST_V1, Manifest, sha256_digest
from ebpm.oci.reference import parse
from ebpm.transfer.pull import pull
from ebpm.trust import keys
from ebpm.trust import policy as trust
from ebpm.trust.sign import sign
from ebpm.trust.verification import VERIFIED
from tests.cli import ebpm
from tests.registryd import Registryd
from tests.signing.signing_helpers import make_artifact


@pytest.fixture
def good() -> keys.KeyInfo:
    info = keys.generate("good")
    keys.generate("evil")
    trust.add_trust("127.0.0.1:*/**", info.public_path)
    return info


def _push(registry: Registryd, repo: str, artifact: Artifact, tag: str = "1.0.0") -> None:
    client = registry_for(registry.host)
    for blob in artifact.blobs:
        client.push_blob(repo, blob.descriptor.digest, blob.data)
    client.put_manifest(repo, tag, artifact.manifest_bytes, MANIFEST_V1)


def _nothing_stored(store: Store, name: str, digest: str) -> None:
    assert store.resolve(name) is None
    assert store.verification(name.rsplit(":", 1)[0], digest) is None
    assert not store.has_blob(digest)


def test_push_sign_pull_verify_offline(capsys: pytest.CaptureFixture[str], registry: Registryd,
                                       good: keys.KeyInfo, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.signing.signing_helpers import make_package_dir

    ref = f"{registry.host}/sig/e2e"
    pkg = make_package_dir(tmp_path / "pkg")
    r = ebpm(capsys, "push", "--sign", "--key", "good", str(pkg), ref)
    assert r.code == 0, r.err
    assert "signed: sha256:" in r.out
    # a second signer joins; the first signature stays
    r = ebpm(capsys, "sign", "--key", "evil", f"{ref}:1.0.0")
    assert r.code == 0 and "signed" in r.out, r.err
    r = ebpm(capsys, "sign", "--key", "evil", f"{ref}:1.0.0")
    assert r.code == 0 and "already signed" in r.out, r.err

    r = ebpm(capsys, "pull", f"{ref}:1.0.0")  # into a clean store
    assert r.code == 0, r.err
    r = ebpm(capsys, "--offline", "verify", f"{ref}:1.0.0")
    assert r.code == 0, r.err
    assert ": verified" in r.out and f"signed by {good.key_id}" in r.out
    assert "ignored: signature 2: not made by a key trusted" in r.out
    r = ebpm(capsys, "--offline", "verify", "--json", ref)  # no tag: the highest version
    doc = json.loads(r.out)
    assert doc["status"] == VERIFIED and [s["key_id"] for s in doc["signers"]] == [good.key_id]

    r = ebpm(capsys, "--offline", "pull", f"{ref}:1.0.0")
    assert r.code == 0 and "(from store)" in r.out, r.err
    monkeypatch.delenv("EBPM_OFFLINE", raising=False)

    # the signature manifest in the registry holds both signers, in cosign's shape
    client = registry_for(registry.host)
    digest = doc["digest"]
    data, _, _ = client.get_manifest("sig/e2e", sig.signature_tag(digest))
    parsed = sig.parse_manifest(data)
    assert len(parsed.signatures) == 2
    payload = client.get_blob("sig/e2e", parsed.signatures[0].descriptor.digest)
    assert payload == sig.make_payload(f"{registry.host}/sig/e2e", digest)


def test_push_sign_with_a_key_that_cannot_sign_publishes_nothing(
        capsys: pytest.CaptureFixture[str], registry: Registryd, good: keys.KeyInfo,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key (and its password) is loaded before any upload: a push --sign that cannot sign
    left the version published unsigned, which every later pull refused."""
    from tests.signing.signing_helpers import make_package_dir

    ref = f"{registry.host}/sig/nokey"
    pkg = make_package_dir(tmp_path / "pkg")
    keys.generate("locked", password="pw")
    client = registry_for(registry.host)

    def tags() -> list[str]:
        try:
            return client.list_tags("sig/nokey")
        except NotFoundError:
            return []

    r = ebpm(capsys, "push", "--sign", "--key", "nokey", str(pkg), ref)
    assert r.code == 2 and "no key named 'nokey'" in r.err
    assert tags() == []  # nothing published, not even a blob's repository
    r = ebpm(capsys, "push", "--key", "locked", str(pkg), ref)
    assert r.code == 1 and "the private key is encrypted" in r.err
    assert tags() == []
    assert "hint: give its password with EBPM_KEY_PASSWORD or --password-stdin" in r.err
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    r = ebpm(capsys, "push", "--key", "locked", "--password-stdin", str(pkg), ref)
    assert r.code == 1 and "cannot load the private key" in r.err
    assert "hint: check the password given (--password-stdin)" in r.err
    r = ebpm(capsys, "publish", str(pkg), ref, "--key", "nokey")  # refused before the build
    assert r.code == 2 and "no key named 'nokey'" in r.err
    assert "compile" not in r.err
    assert tags() == []

    monkeypatch.setattr("sys.stdin", io.StringIO("pw\n"))  # push takes it as sign does
    r = ebpm(capsys, "push", "--key", "locked", "--password-stdin", str(pkg), ref)
    assert r.code == 0 and "signed: sha256:" in r.out, r.err
    assert [t for t in tags() if not t.endswith(".sig")] == ["1.0.0"]


def test_unsigned_pull_is_refused_and_allow_unsigned_is_loud(
        capsys: pytest.CaptureFixture[str], registry: Registryd, good: keys.KeyInfo) -> None:
    artifact = make_artifact(body=b"\x7fELF unsigned")
    _push(registry, "sig/unsigned", artifact)
    ref = f"{registry.host}/sig/unsigned:1.0.0"
    r = ebpm(capsys, "pull", ref)
    assert r.code == 1 and "not signed" in r.err and "hint:" in r.err
    _nothing_stored(Store(), ref, artifact.digest)
    r = ebpm(capsys, "pull", "--allow-unsigned", ref)
    assert r.code == 0 and "warning: --allow-unsigned" in r.err
    assert Store().verification(ref.rsplit(":", 1)[0], artifact.digest) is None


def test_verify_json_prints_the_refusal_as_its_verdict(
        capsys: pytest.CaptureFixture[str], registry: Registryd, good: keys.KeyInfo) -> None:
    """`verify --json` of a refused package printed nothing on stdout: the verdict is verify's
    result, a refusal too (exit 1, the error on stderr); a refused pull has no result."""
    artifact = make_artifact(body=b"\x7fELF unsigned, verified as JSON")
    _push(registry, "sig/refusedjson", artifact)
    ref = f"{registry.host}/sig/refusedjson:1.0.0"
    for first in ("pulled by verify", "from the store"):
        r = ebpm(capsys, "verify", "--json", ref)
        assert r.code == 1 and r.err.startswith("error: ") and "not signed" in r.err, first
        doc = json.loads(r.out)
        assert (doc["status"], doc["digest"], doc["signers"]) == ("refused", artifact.digest, [])
        assert "not signed" in doc["refusal"] and doc["rule"].startswith("127.0.0.1:*/**")
        assert ebpm(capsys, "pull", "--allow-unsigned", ref).code == 0
    r = ebpm(capsys, "pull", "--json", ref)
    assert r.code == 1 and r.out == "" and "not signed" in r.err
    assert ebpm(capsys, "sign", "--key", "evil", ref).code == 0  # a key the policy ignores
    r = ebpm(capsys, "verify", "-o", "json", ref)
    doc = json.loads(r.out)
    assert r.code == 1 and doc["status"] == "refused" and doc["signature"].startswith("sha256:")
    assert [x.split(":")[0] for x in doc["rejected"]] == ["signature 1"]


def test_attack_layer_changed_in_registry(registry: Registryd, good: keys.KeyInfo,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:  # the layer as a blob, as a large object's
        patched.setattr("ebpm.oci.artifact.MAX_EMBEDDED", 0)
        artifact = make_artifact(body=b"\x7fELF layer attack")
    _push(registry, "sig/layer", artifact)
    ref = parse(f"{registry.host}/sig/layer:1.0.0")
    sign(ref, artifact.digest, "good", registry=registry_for(registry.host))
    hexpart = artifact.layers[0].descriptor.digest.partition(":")[2]
    data = registry.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
    data.write_bytes(b"\x7fELF EVIL! attack")  # same size, other bytes
    with pytest.raises(DigestMismatchError, match="got digest"):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", artifact.digest)


def test_attack_manifest_changed_with_old_signature_copied(registry: Registryd,
                                                           good: keys.KeyInfo) -> None:
    client = registry_for(registry.host)
    honest = make_artifact(body=b"\x7fELF honest")
    _push(registry, "sig/manifest", honest)
    ref = parse(f"{registry.host}/sig/manifest:1.0.0")
    sign(ref, honest.digest, "good", registry=client)
    # the attacker replaces the manifest under the tag and copies the honest signature manifest
    # to the new digest's signature tag
    evil = make_artifact(body=b"\x7fELF evil")
    _push(registry, "sig/manifest", evil)
    old, _, _ = client.get_manifest("sig/manifest", sig.signature_tag(honest.digest))
    client.put_manifest("sig/manifest", sig.signature_tag(evil.digest), old, MANIFEST_V1)
    with pytest.raises(SignatureError, match="signs another manifest"):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", evil.digest)


def test_attack_untrusted_key_in_registry(registry: Registryd, good: keys.KeyInfo) -> None:
    artifact = make_artifact(body=b"\x7fELF untrusted")
    _push(registry, "sig/untrusted", artifact)
    ref = parse(f"{registry.host}/sig/untrusted:1.0.0")
    sign(ref, artifact.digest, "evil", registry=registry_for(registry.host))
    with pytest.raises(SignatureError, match="not made by a key trusted"):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", artifact.digest)


def test_attack_signature_copied_from_another_repository(registry: Registryd,
                                                         good: keys.KeyInfo) -> None:
    client = registry_for(registry.host)
    artifact = make_artifact(body=b"\x7fELF copied")
    _push(registry, "sig/origin", artifact)
    sign(parse(f"{registry.host}/sig/origin:1.0.0"), artifact.digest, "good", registry=client)
    # the same bytes and the origin's signature manifest, copied to another repository
    _push(registry, "sig/copy", artifact)
    data, _, _ = client.get_manifest("sig/origin", sig.signature_tag(artifact.digest))
    for layer in [Manifest.from_bytes(data).config, *Manifest.from_bytes(data).layers]:
        client.push_blob("sig/copy", layer.digest, client.get_blob("sig/origin", layer.digest))
    client.put_manifest("sig/copy", sig.signature_tag(artifact.digest), data, MANIFEST_V1)
    ref = parse(f"{registry.host}/sig/copy:1.0.0")
    with pytest.raises(SignatureError, match="signed for another repository"):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", artifact.digest)


def test_attack_garbage_signature_in_registry(registry: Registryd, good: keys.KeyInfo) -> None:
    client = registry_for(registry.host)
    artifact = make_artifact(body=b"\x7fELF garbage")
    _push(registry, "sig/garbage", artifact)
    payload = sig.make_payload(f"{registry.host}/sig/garbage", artifact.digest)
    data, config, _ = sig.add_signature(None, payload, "MEUCIQDtruncated")
    for blob in (payload, config):
        client.push_blob("sig/garbage", sha256_digest(blob), blob)
    client.put_manifest("sig/garbage", sig.signature_tag(artifact.digest), data, MANIFEST_V1)
    ref = parse(f"{registry.host}/sig/garbage:1.0.0")
    with pytest.raises(SignatureError, match="no trusted signature"):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", artifact.digest)


def test_attack_policy_with_errors(capsys: pytest.CaptureFixture[str], registry: Registryd,
                                   good: keys.KeyInfo) -> None:
    artifact = make_artifact(body=b"\x7fELF policy")
    _push(registry, "sig/policy", artifact)
    ref = parse(f"{registry.host}/sig/policy:1.0.0")
    sign(ref, artifact.digest, "good", registry=registry_for(registry.host))
    path = Path(trust.user_policy_path())
    path.write_text(path.read_text().replace("require = true", "require = yes"))
    with pytest.raises(PolicyError):
        pull(ref)
    _nothing_stored(Store(), f"{ref.name}:1.0.0", artifact.digest)
    r = ebpm(capsys, "pull", str(ref))
    assert r.code == 2 and f"{path}:" in r.err


def test_a_missing_tag_is_reported_before_a_broken_policy(registry: Registryd,
                                                           good: keys.KeyInfo) -> None:
    """A pull reads the policy while the manifest comes; the registry's answer still decides
    what the user is told first, as when the policy was read after it."""
    from ebpm.errors import NotFoundError

    path = Path(trust.user_policy_path())
    path.write_text(path.read_text().replace("require = true", "require = yes"))
    with pytest.raises(NotFoundError):
        pull(f"{registry.host}/sig/absent:1.0.0")
    with pytest.raises(PolicyError):
        trust.load_policy()  # it is broken


def test_concurrent_signers_all_keep_their_signature(registry: Registryd,
                                                     good: keys.KeyInfo) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from ebpm.oci.remote import Registry

    artifact = make_artifact(body=b"\x7fELF concurrent")
    _push(registry, "sig/concurrent", artifact)
    ref = parse(f"{registry.host}/sig/concurrent:1.0.0")
    names = [f"signer{n}" for n in range(4)]
    for name in names:
        keys.generate(name)

    def one(name: str) -> str:
        return sign(ref, artifact.digest, name, registry=Registry(registry.host)).key_id

    with ThreadPoolExecutor(len(names)) as pool:
        ids = set(pool.map(one, names))
    data, _, _ = registry_for(registry.host).get_manifest("sig/concurrent",
                                                           sig.signature_tag(artifact.digest))
    assert len(sig.parse_manifest(data).signatures) == len(names) == len(ids)


def test_concurrent_referrer_signers_all_stay_listed(registry: Registryd,
                                                     good: keys.KeyInfo) -> None:
    """Without a referrers API every signer rewrites the fallback tag's index: read, add,
    write, read back; nobody's referrer is lost."""
    from concurrent.futures import ThreadPoolExecutor

    from ebpm.oci.referrers import parse_index, referrers_tag
    from ebpm.oci.remote import Registry

    artifact = make_artifact(body=b"\x7fELF concurrent referrers")
    _push(registry, "sig/concurrent-referrers", artifact)
    ref = parse(f"{registry.host}/sig/concurrent-referrers:1.0.0")
    names = [f"referrer{n}" for n in range(4)]
    for name in names:
        keys.generate(name)

    def one(name: str) -> str:
        return sign(ref, artifact.digest, name, registry=Registry(registry.host),
                    referrers=True).digest

    with ThreadPoolExecutor(len(names)) as pool:
        pushed = set(pool.map(one, names))
    data, _, _ = registry_for(registry.host).get_manifest(
        "sig/concurrent-referrers", referrers_tag(artifact.digest))
    assert {d.digest for d in parse_index(data)} == pushed and len(pushed) == len(names)


def _signed_both_ways(capsys: pytest.CaptureFixture[str], ref: str, tmp_path: Path
                      ) -> tuple[str, keys.KeyInfo]:
    """A package pushed to `ref` signed in both forms, both trusted: the legacy `.sig` by
    `good`, a referrer by a new key `other` (returned)."""
    from tests.signing.signing_helpers import make_package_dir

    r = ebpm(capsys, "push", "--sign", "--key", "good", str(make_package_dir(tmp_path / "p")), ref)
    assert r.code == 0, r.err
    other = keys.generate("other")
    trust.add_trust("127.0.0.1:*/**", other.public_path)
    r = ebpm(capsys, "sign", "--referrers", "--key", "other", f"{ref}:1.0.0")
    assert r.code == 0, r.err
    return ref, other


def test_a_pull_stops_at_the_legacy_signature_and_verify_lists_every_signer(
        capsys: pytest.CaptureFixture[str], registry: Registryd, good: keys.KeyInfo,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signed in both forms (the legacy `.sig` by `good`, a referrer by `other`), both trusted:
    the pull stops at the legacy signature, which verifies it (no referrers looked up); offline,
    verify says so; online, verify looks the referrers up and lists both signers."""
    ref, other = _signed_both_ways(capsys, f"{registry.host}/sig/both", tmp_path)

    store = Store(tmp_path / "fresh")
    package = pull(f"{ref}:1.0.0", store=store)
    assert package.verification is not None and package.verification.partial
    assert [s.key_id for s in package.verification.signers] == [good.key_id]

    monkeypatch.setenv("EBPM_HOME", str(store.root))
    r = ebpm(capsys, "--offline", "verify", f"{ref}:1.0.0")
    assert r.code == 0 and f"signed by {good.key_id}" in r.out, r.err
    assert other.key_id not in r.out and "referrers were not looked up" in r.out
    monkeypatch.delenv("EBPM_OFFLINE", raising=False)
    r = ebpm(capsys, "verify", "--json", f"{ref}:1.0.0")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert sorted(s["key_id"] for s in doc["signers"]) == sorted([good.key_id, other.key_id])
    assert doc["partial"] is False
    r = ebpm(capsys, "--offline", "verify", "--json", f"{ref}:1.0.0")  # the record says so now
    assert json.loads(r.out)["partial"] is False and len(json.loads(r.out)["signers"]) == 2

    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "empty"))  # verify pulls it first: every
    r = ebpm(capsys, "verify", f"{ref}:1.0.0")  # signer too (was: the legacy one, and a note
    assert r.code == 0, r.err  # to "verify online", said online)
    assert f"signed by {good.key_id}" in r.out and f"signed by {other.key_id}" in r.out
    assert "not looked up" not in r.out


def test_save_carries_every_signature_of_a_pull_that_stopped_at_the_legacy_one(
        registry: Registryd, good: keys.KeyInfo, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The machine that loads an archive may trust another signer: `save` looks up the
    referrers of a package whose pull stopped at its `.sig` (online), so the archive holds
    both forms; `pull(every_signature=True)` (the hub's) looks them up at once."""
    import tarfile

    from ebpm.oci.referrers import referrers_tag
    from ebpm.transfer.archive import save

    ref, other = _signed_both_ways(capsys, f"{registry.host}/sig/saved", tmp_path)
    digest = pull(f"{ref}:1.0.0", store=Store(tmp_path / "s1"), every_signature=True).digest
    both = pull(f"{ref}:1.0.0", store=Store(tmp_path / "s2"), every_signature=True)
    assert both.verification is not None and not both.verification.partial
    assert len(both.verification.signers) == 2

    package = pull(f"{ref}:1.0.0")
    assert package.verification is not None and package.verification.partial
    out = tmp_path / "saved.tar"
    save([f"{ref}:1.0.0"], out)
    with tarfile.open(out) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        names = {m["annotations"]["org.opencontainers.image.ref.name"]
                 for m in json.loads(member.read())["manifests"]}
    assert f"{ref}:{referrers_tag(digest)}" in names
    assert f"{ref}:{sig.signature_tag(digest)}" in names
