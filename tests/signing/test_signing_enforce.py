"""enforce() from the store alone: trusted signatures pass and are recorded; every attack is
refused with a clear message and nothing marked verified; records follow the policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpm.errors import DigestMismatchError, PolicyError, SignatureError
from ebpm.oci import signature as sig
from ebpm.oci.layout import Store
from ebpm.oci.model import Manifest, sha256_digest
from ebpm.oci.reference import parse
from ebpm.trust import keys
from ebpm.trust import policy as trust
from ebpm.trust.verification import NOT_REQUIRED, UNSIGNED_ALLOWED, VERIFIED, enforce
from tests.signing.signing_helpers import make_artifact, store_artifact, store_signature

REPO = "localhost:5000/tools/demo"


def _sign(store: Store, repo: str, digest: str, key_name: str, *, payload: bytes | None = None,
          signature: str | None = None, into: str | None = None) -> str:
    """Sign (payload defaults to the honest one) and put the signature manifest into the store
    under `into`'s repository (default `repo`), adding to what is there."""
    private = keys.load_private(key_name)
    payload = payload if payload is not None else sig.make_payload(repo, digest)
    signature = signature if signature is not None else sig.sign_payload(payload, private)
    target = into or repo
    existing = store.resolve(f"{target}:{sig.signature_tag(digest)}")
    old = Manifest.from_bytes(store.read_blob(existing.digest)) if existing else None
    data, config, _ = sig.add_signature(old, payload, signature)
    return store_signature(store, target, digest, data,
                           {sha256_digest(payload): payload, sha256_digest(config): config})


@pytest.fixture
def setup() -> tuple[Store, str]:
    """A store holding one package; key 'good' trusted for localhost:5000/**, 'evil' not."""
    good = keys.generate("good")
    keys.generate("evil")
    trust.add_trust("localhost:5000/**", good.public_path)
    store = Store()
    artifact = make_artifact()
    store_artifact(store, artifact, f"{REPO}:1.0.0")
    return store, artifact.digest


def _refused(store: Store, digest: str, *words: str, repo: str = REPO) -> None:
    with pytest.raises(SignatureError) as info:
        enforce(store, parse(repo), digest)
    for w in words:
        assert w in info.value.message, info.value.message
    assert store.verification(repo, digest) is None


def test_trusted_signature_verifies_and_is_recorded(setup: tuple[Store, str]) -> None:
    store, digest = setup
    sig_digest = _sign(store, REPO, digest, "good")
    v = enforce(store, parse(REPO), digest)
    assert v.status == VERIFIED and not v.cached and v.signature == sig_digest
    assert [s.key_id for s in v.signers] == [keys.list_keys()[1].key_id]  # 'good'
    record = store.verification(REPO, digest)
    assert record is not None and record["policy"] == v.policy
    again = enforce(store, parse(REPO), digest)
    assert again.cached and again.signers == v.signers


def test_cached_record_is_checked_again_when_the_policy_changes(
        setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, REPO, digest, "good")
    first = enforce(store, parse(REPO), digest)
    trust.add_trust("ghcr.io/**", None, require=False)  # an unrelated change still re-verifies
    second = enforce(store, parse(REPO), digest)
    assert not second.cached and second.policy != first.policy
    # now distrust 'good': the cached record must not let the package through
    trust.remove_trust("localhost:5000/**")
    _refused(store, digest, "no key is trusted")


def test_new_signature_manifest_is_checked_again(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, REPO, digest, "good")
    enforce(store, parse(REPO), digest)
    _sign(store, REPO, digest, "evil")  # another signer joins: the record no longer applies
    v = enforce(store, parse(REPO), digest)
    assert not v.cached and len(v.signers) == 1 and len(v.rejected) == 1


def test_attack_unsigned(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _refused(store, digest, "not signed", sig.signature_tag(digest))


def test_attack_untrusted_key(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, REPO, digest, "evil")
    _refused(store, digest, "no trusted signature", "not made by a key trusted")


def test_attack_signature_of_another_digest(setup: tuple[Store, str]) -> None:
    store, digest = setup
    other = make_artifact("2.0.0")
    store_artifact(store, other)
    # a valid signature by the trusted key, but over the other package's digest, placed at this
    # package's signature tag
    payload = sig.make_payload(REPO, other.digest)
    _sign(store, REPO, digest, "good", payload=payload)
    _refused(store, digest, "signs another manifest", other.digest)


def test_attack_signature_copied_from_another_repository(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, "localhost:5000/tools/other", digest, "good", into=REPO)
    _refused(store, digest, "signed for another repository", "localhost:5000/tools/other")


@pytest.mark.parametrize("bad", ["", "AAAA", "not-base64!!", "MEUCIQ=="])
def test_attack_truncated_or_garbage_signature(setup: tuple[Store, str], bad: str) -> None:
    store, digest = setup
    good_sig = sig.sign_payload(sig.make_payload(REPO, digest), keys.load_private("good"))
    _sign(store, REPO, digest, "good", signature=bad or good_sig[: len(good_sig) // 2])
    _refused(store, digest, "no trusted signature")


def test_attack_garbage_signature_manifest(setup: tuple[Store, str]) -> None:
    store, digest = setup
    store_signature(store, REPO, digest, b'{"schemaVersion": 2, "layers": "nope"}', {})
    _refused(store, digest, "signature manifest")


def test_attack_layer_changed_in_store(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, REPO, digest, "good")
    _, manifest = store.read_manifest(digest)
    path = Path(store.blob_path(manifest.layers[0].digest))
    os.chmod(path, 0o644)
    path.write_bytes(b"\x7fELF evil object")
    with pytest.raises(DigestMismatchError, match="got digest"):
        enforce(store, parse(REPO), digest)
    assert store.verification(REPO, digest) is None


def test_attack_policy_with_errors_refuses_to_run(setup: tuple[Store, str]) -> None:
    store, digest = setup
    _sign(store, REPO, digest, "good")
    enforce(store, parse(REPO), digest)
    path = Path(trust.user_policy_path())
    path.write_text(path.read_text() + "\n[[trust]]\nscope = \"x/**\"\nrequire = maybe\n")
    with pytest.raises(PolicyError, match=rf"{path}:\d+"):
        enforce(store, parse(REPO), digest)  # even with a cached record


def test_allow_unsigned_is_accepted_but_not_recorded(setup: tuple[Store, str]) -> None:
    store, digest = setup
    v = enforce(store, parse(REPO), digest, allow_unsigned=True)
    assert v.status == UNSIGNED_ALLOWED and not v.verified
    assert store.verification(REPO, digest) is None


def test_optional_scope_accepts_unsigned(setup: tuple[Store, str], tmp_path: Path) -> None:
    store, digest = setup
    trust.add_trust("localhost:5000/tools/*", None, require=False)
    v = enforce(store, parse(REPO), digest)
    assert v.status == NOT_REQUIRED and store.verification(REPO, digest) is None


def _cached_in_a_new_process(digest: str) -> None:
    """enforce() in a process of its own answers from the record, importing no cryptography
    (what the run path does)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ebpm.oci.layout import Store\n"
        "from ebpm.oci.reference import parse\n"
        "from ebpm.trust.verification import enforce\n"
        f"v = enforce(Store(), parse({REPO!r}), {digest!r})\n"
        "assert v.cached, v\n"
        "heavy = ('cryptography', 'requests', 'rich')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy]\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_cached_enforce_imports_no_cryptography(setup: tuple[Store, str]) -> None:
    """The run path checks a verification record without loading cryptography."""
    store, digest = setup
    _sign(store, REPO, digest, "good")
    enforce(store, parse(REPO), digest)
    _cached_in_a_new_process(digest)


def test_a_record_of_the_old_layout_still_answers(setup: tuple[Store, str]) -> None:
    """A store written before the records moved into the index (a file per package under
    ebpm/verified/) is still read: the cached check needs no cryptography; the next record
    written replaces the file."""
    import json

    from ebpm.oci.layout import VERIFICATION

    store, digest = setup
    _sign(store, REPO, digest, "good")
    enforce(store, parse(REPO), digest)
    record = store.verification(REPO, digest)
    assert record is not None
    index = Path(store.root) / "index.json"
    doc = json.loads(index.read_text())
    for entry in doc["manifests"]:  # as the old layout wrote it: the index without records
        entry["annotations"].pop(VERIFICATION, None)
    index.write_text(json.dumps(doc))
    legacy = Path(store.state_dir) / "verified" / (digest.partition(":")[2] + ".json")
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"v": record.pop("v"), "repositories": {REPO: record}}))
    _cached_in_a_new_process(digest)
    assert enforce(Store(), parse(REPO), digest, fresh=True).verified  # a record written
    assert not legacy.exists() and Store().verification(REPO, digest) is not None
