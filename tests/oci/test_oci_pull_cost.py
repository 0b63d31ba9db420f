"""What a pull costs, so that it cannot creep back (issue 18; figures in docs/architecture.md,
"HTTP stack" and "Signature check"):

- a cold signed `ebpm pull` from a plain-http registry is parsed without click (the lean
  entry), imports no logging (nothing set it up to show a line), and speaks HTTP through
  ebpm.oci.http over a socket: no http.client, email, ssl, requests, urllib3 or h11; no
  dataclasses (records, ebpm/record.py; dataclasses brings inspect and ast); it checks the signature
  with cryptography's EC and hash primitives only (not its OpenSSL backend module, ciphers or
  serialization); no pathlib (the store, the policy and the files are strings and os.path),
  urllib.parse (ebpm.oci.http splits the URLs it makes) or ipaddress (the loopback check is
  inet_pton's), three modules that cost it ~3 ms of CPU to import;
- `ebpm pull` and `ebpm install --frozen` of a package already in the store and verified do
  not import cryptography at all, and `install` (on the lean entry too) imports no click;
- each blob a pull downloads is hashed once, as it streams in (never again by the pull);
- the check of a cold pull reads nothing back from the store: the manifest and the
  signature's blobs are checked as the pull holds them, verified by digest;
- a signature made by ebpm or cosign costs one request (its manifest): its config and payload
  are recognised by digest, not downloaded;
- a frozen install whose lock pins the legacy signature manifest looks up no other signature
  (no referrers API, no fallback tag), and is verified all the same; so does a cold pull (4
  requests) whose `.sig` signature verifies it, and one whose `.sig` does not looks up every
  signature;
- the blobs and the signature are asked for while the trust policy is read, and the check's
  imports are made while they come;
- a cold signed pull computes its digests with cryptography's SHA-256 (imported for the check
  anyway), so hashlib, which loads a second OpenSSL, is not imported; a pull that needs no
  cryptography (the package stored and its check recorded) hashes with hashlib; so does an
  `install --frozen` that fetches a package (from the lock's spec_hash on: ebpm.digests);
- a policy that `ebpm trust` wrote is read from the document saved beside it (no tomllib).

An audit hook sees every import attempt, even one that fails or is undone."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ebpm.oci.layout import Store
from ebpm.oci.signature import signature_tag
from ebpm.transfer.pull import pull
from ebpm.transfer.push import push
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.registryd import Registryd

pytestmark = pytest.mark.registry

_GUARDED = """
import json, sys
tried = set()

def audit(event, args):
    if event == "import":
        tried.add(str(args[0]))

sys.addaudithook(audit)
from ebpm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
tried |= set(sys.modules)
print("imports: " + json.dumps(sorted(tried)), file=sys.stderr)
sys.exit(code or 0)
"""

# never on a pull from a plain-http registry (`ebpm pull` runs on the lean entry: no click)
_NEVER = ("http", "email", "ssl", "requests", "urllib3", "h11", "rich", "click", "logging",
          "dataclasses", "inspect", "encodings.idna", "concurrent", "ebpm.transfer.formats",
          # zlib only for a compressed body; base64 (with struct) is binascii's two calls
          "zlib", "base64", "struct")
# never on an `install --frozen` either (lean entry, workers from ebpm.meanwhile.each), and
# neither semver (a lock is checked against ebpm.toml by the ranges' spelling: versions are not
# compared), nor what only path dependencies need (their digest; git's subprocess)
_NEVER_INSTALL = (*_NEVER, "semver", "argparse", "subprocess", "ebpm.deps.paths",
                  "ebpm.deps.git", "ebpm.resolver.resolve")
# nor on a cold pull (its URLs are split by ebpm.oci.http.split_url, its loopback check is
# inet_pton's; pathlib brings urllib.parse, which brings ipaddress: ~3 ms of CPU)
_NEVER_PULL = ("pathlib", "urllib", "ipaddress", "fnmatch", "ntpath")
# cryptography parts a signature check does not need (its backend module pulls in ciphers)
_NEVER_CRYPTO = ("cryptography.hazmat.backends", "cryptography.hazmat.primitives.ciphers",
                 "cryptography.hazmat.primitives.serialization", "cryptography.x509")


def _imports(*args: str, cwd: Path | None = None) -> set[str]:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", _GUARDED, *args], capture_output=True,
                          text=True, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[:1500]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("imports: "))
    return set(json.loads(line.removeprefix("imports: ")))


def _under(found: set[str], roots: tuple[str, ...]) -> list[str]:
    return sorted(m for m in found if any(m == r or m.startswith(r + ".") for r in roots))


_REPOSITORIES = itertools.count()


@pytest.fixture
def signed(registry: Registryd, hello_object: Path) -> str:
    key = keys.generate("guard")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    # a repository of its own per test (an id() is reused once its object is freed: a test
    # would meet the signatures an earlier one added, e.g. a referrer)
    ref = f"{registry.host}/imports/hello-{os.getpid()}-{next(_REPOSITORIES)}:1.0.0"
    push(hello_object, ref, sign_key="guard")
    return ref


@pytest.fixture
def signed_large(registry: Registryd, hello_object: Path,
                 monkeypatch: pytest.MonkeyPatch) -> str:
    """A signed package whose layer is not embedded in its manifest, as a layer over the
    embedding cap (oci/artifact.MAX_EMBEDDED) is not: the cap is 0 while it is packed."""
    from ebpm.oci import artifact

    key = keys.generate("guard")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    ref = f"{registry.host}/imports/large-{os.getpid()}-{next(_REPOSITORIES)}:1.0.0"
    with monkeypatch.context() as patched:
        patched.setattr(artifact, "MAX_EMBEDDED", 0)
        push(hello_object, ref, sign_key="guard")
    return ref


def test_cold_signed_pull_imports_only_the_chosen_stack(signed: str) -> None:
    found = _imports("pull", signed)
    assert _under(found, _NEVER) == []
    assert _under(found, _NEVER_PULL) == []
    assert _under(found, _NEVER_CRYPTO) == []
    # its digests are cryptography's SHA-256: no second OpenSSL (hashlib's libcrypto)
    assert _under(found, ("hashlib", "_hashlib")) == []
    # its policy, written by `ebpm trust add`, is read from its saved document: no TOML parser
    # (tomllib brings string and datetime: ~3-5 ms of CPU)
    assert _under(found, ("tomllib", "datetime", "string")) == []
    assert "ebpm.oci.http" in found
    assert "cryptography.hazmat.primitives.asymmetric.ec" in found  # it did check a signature
    assert Store().verification(signed.rsplit(":", 1)[0],
                                pull(signed, prefer_cache=True).digest) is not None


def test_cached_verified_pull_and_frozen_install_import_no_cryptography(
    signed: str, tmp_path: Path,
) -> None:
    digest = pull(signed).digest  # in the store, its verification recorded
    assert Store().verification(signed.rsplit(":", 1)[0], digest) is not None
    found = _imports("pull", signed)
    assert _under(found, ("cryptography",)) == []  # (its digests: hashlib's)
    assert _under(found, _NEVER) == []

    app = tmp_path / "app"
    app.mkdir()
    (app / "ebpm.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
        f'hello = {{ ref = "{signed.rsplit(":", 1)[0]}", version = "^1" }}\n'
    )
    _imports("lock", "-C", str(app))
    Store().untag(signed)  # the install fetches it again and checks its signature
    fetching = _imports("install", "--frozen", "-C", str(app))
    assert _under(fetching, _NEVER_INSTALL) == []
    assert "cryptography.hazmat.primitives.asymmetric.ec" in fetching
    # its digests (the lock's spec_hash too) are cryptography's: no second OpenSSL
    assert _under(fetching, ("hashlib", "_hashlib")) == []
    found = _imports("install", "--frozen", "-C", str(app))
    assert _under(found, ("cryptography",)) == []
    assert _under(found, _NEVER_INSTALL) == []


def test_each_blob_is_hashed_once_per_pull(signed: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The layers are hashed as they stream in; the store's check (re-reading and hashing a
    file) is not run again on them by the same pull."""
    rehashed: list[str] = []
    check_blob = Store.check_blob

    def counting(self: Store, digest: str, *, size: int | None = None) -> None:
        rehashed.append(digest)
        check_blob(self, digest, size=size)

    monkeypatch.setattr(Store, "check_blob", counting)
    package = pull(signed, store=Store(tmp_path / "empty-store"))  # every blob downloaded
    layers = {d.digest for d in (package.manifest.config, *package.manifest.layers)}
    assert package.verification is not None and package.verification.verified
    assert layers & set(rehashed) == set()
    assert package.object  # read (and checked) only when used


def test_a_pull_reads_back_nothing_it_just_stored(signed: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The check of a cold pull works from what the pull holds, verified by digest: its
    manifest, the signature manifest and payload are not read back from the store (an install
    pays that per package); a check from the store alone still reads them there."""
    from ebpm.trust.verification import enforce

    read: list[str] = []
    read_blob = Store.read_blob

    def counting(self: Store, digest: str, *, size: int | None = None) -> bytes:
        read.append(digest)
        return read_blob(self, digest, size=size)

    monkeypatch.setattr(Store, "read_blob", counting)
    store = Store(tmp_path / "empty-store")
    package = pull(signed, store=store)
    assert package.verification is not None and package.verification.verified
    assert read == []
    again = enforce(store, package.reference, package.digest, fresh=True)
    assert again.verified and package.digest in read and len(read) >= 3


def test_frozen_install_with_a_pinned_signature_skips_discovery(
    signed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ebpm.deps.install import install
    from ebpm.deps.lock import lock
    from ebpm.oci.remote import Registry
    from ebpm.resolver.lockfile import Lockfile

    app = tmp_path / "app"
    app.mkdir()
    (app / "ebpm.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
        f'hello = {{ ref = "{signed.rsplit(":", 1)[0]}", version = "^1" }}\n'
    )
    lock(app)
    pins = [e.signature_digest for e in Lockfile.loads((app / "ebpm.lock").read_text()).packages]
    assert pins and all(pins)

    asked: list[str] = []
    referrers_api = Registry.referrers_api
    get_manifest = Registry.get_manifest

    def spy_referrers(self: Registry, repository: str, digest: str) -> object:
        asked.append(f"referrers {digest}")
        return referrers_api(self, repository, digest)

    def spy_manifest(self: Registry, repository: str, reference: str, **kw: object) -> object:
        asked.append(f"manifest {reference}")
        return get_manifest(self, repository, reference, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Registry, "referrers_api", spy_referrers)
    monkeypatch.setattr(Registry, "get_manifest", spy_manifest)
    every = _asked(monkeypatch)
    store = Store(tmp_path / "empty-store")
    got = install(app, frozen=True, store=store)
    (hello,) = got.packages  # the one dependency
    assert hello.signed_by and not hello.cached
    # 2 requests a package: its manifest carries the config and the small layer (`data`)
    assert _kinds(every) == ["manifests", "manifests/.sig"], every
    assert not [a for a in asked if a.startswith("referrers")], asked
    assert [a for a in asked if a.startswith("manifest sha256-")] == [
        a for a in asked if a.endswith(".sig")], asked  # the .sig tag only, no fallback tag
    assert store.verification(signed.rsplit(":", 1)[0], hello.digest) is not None


def test_a_signature_costs_one_request(signed: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpm.oci.remote import Registry

    blobs: list[str] = []
    get_blob = Registry.get_blob

    def spy(self: Registry, repository: str, digest: str, **kw: object) -> bytes:
        blobs.append(digest)
        return get_blob(self, repository, digest, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Registry, "get_blob", spy)
    store = Store(tmp_path / "empty-store")
    package = pull(signed, store=store)
    assert package.verification is not None and package.verification.verified
    assert blobs == []  # the signature manifest's config and payload were not downloaded
    sig = store.resolve(f"{package.reference.name}:{signature_tag(package.digest)}")
    assert sig is not None
    _, manifest = store.read_manifest(sig.digest)
    for desc in (manifest.config, *manifest.layers):
        # readable from the store all the same (made from the manifest and its name, and
        # checked by digest: no file of their own, docs/format.md)
        assert store.read_blob(desc.digest, size=desc.size)
        assert not os.path.exists(store.blob_path(desc.digest))


def _asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests made from now on, as "METHOD path"."""
    from ebpm.oci.transport import Transport

    asked: list[str] = []
    request = Transport.request

    def spy(self: Transport, method: str, path: str, *args: object, **kw: object) -> object:
        asked.append(f"{method} {path}")
        return request(self, method, path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Transport, "request", spy)
    return asked


def _kinds(asked: list[str]) -> list[str]:
    return sorted(p.split("/")[-2] + ("/.sig" if p.endswith(".sig") else "")
                  for p in (a.split(" ", 1)[1] for a in asked))


def test_a_cold_pull_asks_for_the_legacy_signature_only(
    signed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2 requests (crane and skopeo make 4 without their /v2/ ping: they fetch the config and
    layer blobs): the manifest, which carries the package's config and its small layer
    (`data`), and the `.sig` signature manifest; the referrers API and its fallback tag are not
    asked for when the legacy signature verifies the package."""
    asked = _asked(monkeypatch)
    package = pull(signed, store=Store(tmp_path / "empty-store"))
    assert package.verification is not None and package.verification.verified
    hexpart = package.digest.partition(":")[2]
    assert _kinds(asked) == ["manifests", "manifests/.sig"], asked
    assert not [a for a in asked if "referrers" in a or a.endswith(f"sha256-{hexpart}")], asked
    for blob in (package.manifest.config, *package.manifest.layers):  # stored from `data`
        assert blob.data is not None
        Store(tmp_path / "empty-store").check_blob(blob.digest, size=blob.size)
    assert package.object == package.manifest.layers[0].data


def test_a_layer_over_the_embedding_cap_is_fetched(
    signed_large: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A layer that does not fit in the manifest (oci/artifact.MAX_EMBEDDED) costs its blob's
    request: 3 requests, the config still from the manifest."""
    asked = _asked(monkeypatch)
    package = pull(signed_large, store=Store(tmp_path / "empty-store"))
    assert package.verification is not None and package.verification.verified
    assert _kinds(asked) == ["blobs", "manifests", "manifests/.sig"], asked
    (layer,) = package.manifest.layers
    assert layer.data is None and f"blobs/{layer.digest}" in str(asked)
    assert package.manifest.config.data is not None


def test_a_manifest_without_an_embedded_config_has_it_fetched(
    registry: Registryd, hello_object: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A package whose manifest only names its config and layers (another tool's, an older
    ebpm's) costs their requests, as before."""
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
    from ebpm.oci.remote import Registry
    from ebpm.package import PackageConfig

    art = pack(PackageConfig(name="plain", version="1.0.0").to_json(),
               [Layer(BPF_OBJECT_TYPE, "plain.bpf.o", hello_object.read_bytes())],
               annotations={}, embed=False)
    client = Registry(registry.host)
    repo = f"imports/plain-{os.getpid()}-{next(_REPOSITORIES)}"
    for blob in art.blobs:
        client.push_blob(repo, blob.descriptor.digest, blob.data)
    client.put_manifest(repo, "1.0.0", art.manifest_bytes, MANIFEST_V1)
    blobs: list[str] = []
    fetch_blob = Registry.fetch_blob

    def spy(self: Registry, repository: str, digest: str, *args: object, **kw: object) -> object:
        blobs.append(digest)
        return fetch_blob(self, repository, digest, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Registry, "fetch_blob", spy)
    package = pull(f"{registry.host}/{repo}:1.0.0", allow_unsigned=True,
                   store=Store(tmp_path / "store"))
    assert package.config.name == "plain"
    assert sorted(blobs) == sorted(b.descriptor.digest for b in art.blobs)


def test_a_legacy_signature_that_fails_the_policy_is_looked_up_fully(
    signed: str, registry: Registryd, tmp_path: Path,
) -> None:
    """The legacy signature is key A's; the policy now trusts only key B, which signed a
    referrer: the pull looks up every signature and is verified by B (a pinned install the
    same: tests/signing)."""
    from ebpm.access import parse_reference, registry_for
    from ebpm.trust.sign import sign

    reference = parse_reference(signed)
    client = registry_for(registry.host)
    _, _, digest = client.get_manifest(reference.repository, reference.tag or "")
    assert client.head_manifest(reference.repository, signature_tag(digest)) is not None
    other = keys.generate("other")
    sign(reference, digest, "other", referrers=True)
    Path(trust.user_policy_path()).unlink()
    trust.add_trust(f"{registry.host}/**", other.public_path)

    store = Store(tmp_path / "empty-store")
    package = pull(signed, store=store)
    assert package.verification is not None and package.verification.verified
    assert [s.key_id for s in package.verification.signers] == [other.key_id]
    assert store.verification(package.reference.name, package.digest) is not None


def test_an_unverified_legacy_signature_does_not_hide_a_trusted_referrer(
    signed: str, registry: Registryd, tmp_path: Path,
) -> None:
    """With --allow-unsigned the legacy signature's failure is no error, yet a trusted
    referrer still verifies the package (not accepted as merely unsigned)."""
    from ebpm.access import parse_reference, registry_for
    from ebpm.trust.sign import sign

    reference = parse_reference(signed)
    client = registry_for(registry.host)
    _, _, digest = client.get_manifest(reference.repository, reference.tag or "")
    other = keys.generate("other2")
    sign(reference, digest, "other2", referrers=True)
    Path(trust.user_policy_path()).unlink()
    trust.add_trust(f"{registry.host}/**", other.public_path)

    package = pull(signed, store=Store(tmp_path / "empty-store"), allow_unsigned=True)
    assert package.verification is not None and package.verification.verified
    assert [s.key_id for s in package.verification.signers] == [other.key_id]


def test_the_check_is_prepared_while_the_package_comes(signed: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The trust policy is read while the manifest is on its way, and what the signature check
    imports while the blobs are: each download here waits until that work has started (a pull
    that did it only after its requests would never get its blobs)."""
    import threading

    from ebpm.oci.remote import Registry
    from ebpm.trust import policy as policy_module
    from ebpm.trust import verification

    policy_read, prepared = threading.Event(), threading.Event()
    get_manifest, fetch_blob = Registry.get_manifest, Registry.fetch_blob
    load_policy, prepare = policy_module.load_policy, verification.prepare

    def reading() -> object:
        policy_read.set()
        return load_policy()

    def preparing(*args: object) -> None:
        prepared.set()
        prepare(*args)  # type: ignore[arg-type]

    def manifest_after_policy(self: Registry, repository: str, reference: str,
                              **kw: object) -> object:
        if not reference.startswith("sha256"):  # the package's manifest (not a signature's)
            assert policy_read.wait(10), "the manifest request waited for nothing"
        return get_manifest(self, repository, reference, **kw)  # type: ignore[arg-type]

    def blob_after_prepare(self: Registry, *args: object, **kw: object) -> object:
        assert prepared.wait(10), "the blob request waited for nothing"
        return fetch_blob(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(policy_module, "load_policy", reading)
    monkeypatch.setattr(verification, "prepare", preparing)
    monkeypatch.setattr(Registry, "get_manifest", manifest_after_policy)
    monkeypatch.setattr(Registry, "fetch_blob", blob_after_prepare)
    package = pull(signed, store=Store(tmp_path / "empty-store"))
    assert package.verification is not None and package.verification.verified


def test_the_package_comes_while_the_policy_is_read(signed_large: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The blobs and the signature are asked for as soon as the manifest names them, not
    after the trust policy is read: here the policy's reading waits until both requests have
    gone out (a pull that made them only afterwards would never get its policy). The layer
    is one the manifest does not carry (over the embedding cap)."""
    import threading

    from ebpm.oci.remote import Registry
    from ebpm.trust import policy as policy_module

    blob_asked, signature_asked = threading.Event(), threading.Event()
    get_manifest, fetch_blob = Registry.get_manifest, Registry.fetch_blob
    load_policy = policy_module.load_policy

    def reading() -> object:
        assert blob_asked.wait(10), "the policy was read before any blob was asked for"
        assert signature_asked.wait(10), "the policy was read before the signature was"
        return load_policy()

    def manifest(self: Registry, repository: str, reference: str, **kw: object) -> object:
        if reference.endswith(".sig"):
            signature_asked.set()
        return get_manifest(self, repository, reference, **kw)  # type: ignore[arg-type]

    def blob(self: Registry, *args: object, **kw: object) -> object:
        blob_asked.set()
        return fetch_blob(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(policy_module, "load_policy", reading)
    monkeypatch.setattr(Registry, "get_manifest", manifest)
    monkeypatch.setattr(Registry, "fetch_blob", blob)
    package = pull(signed_large, store=Store(tmp_path / "empty-store"))
    assert package.verification is not None and package.verification.verified


def test_a_first_pull_fsyncs_what_the_index_names_once(signed: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Durable before named, and no more: each blob and the layout file once, their
    directories once, then the index and its directory; the verification record (a cache of
    the check, made again if a crash loses it) is not fsynced."""
    synced: list[str] = []
    fsync = os.fsync

    def naming(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", naming)
    store = Store(tmp_path / "new")
    package = pull(signed, store=store)
    assert package.verification is not None and package.verification.verified
    blobs = sorted(str(p) for p in (Path(store.root) / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4  # manifest, config, layer; signature manifest
    root = str(store.root)
    # the index is written to a temp name, fsynced, then renamed: its path is the temp one
    index = [p for p in synced if os.path.basename(p).startswith(".index.json.")]
    assert sorted(synced) == sorted([*blobs, f"{root}/oci-layout", f"{root}/blobs/sha256", root,
                                     *index, root]), synced
    assert store.verification(package.reference.name, package.digest) is not None


def test_a_pull_compiles_no_pattern_for_errors_or_globs(signed: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding a policy file's line (for an error message) and globbing the store's stale
    staging directories each compile a pattern: a pull under a valid policy does neither (its
    policy is parsed here, so that no cache hides it)."""
    import re

    compiled: list[str] = []
    real = re._compile  # type: ignore[attr-defined]

    def recording(pattern: object, flags: object) -> object:
        compiled.append(str(pattern))
        return real(pattern, flags)

    monkeypatch.setattr(re, "_compile", recording)
    monkeypatch.setattr(Path, "glob", lambda *a, **k: pytest.fail("a pull globbed"))
    policy_path = tmp_path / "policy.toml"
    key = keys.generate("lines")
    policy_path.write_text(f'[[trust]]\nscope = "x/**"\nkeys = ["{key.public_path}"]\n')
    assert trust.parse_policy(policy_path.read_text(), policy_path)
    package = pull(signed, store=Store(tmp_path / "new"))
    assert package.verification is not None and package.verification.verified
    assert not [p for p in compiled if "keys" in p], compiled


_ORDER = """
import json, sys
order = []
sys.addaudithook(lambda event, args: order.append(str(args[0])) if event == "import" else None)
from ebpm.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("order: " + json.dumps(order), file=sys.stderr)
sys.exit(code or 0)
"""


def test_the_manifest_is_asked_for_before_typing_is_imported(signed: str) -> None:
    """What a cold pull imports before its first request's thread starts (ebpm.meanwhile,
    imported right before it) is what asking for the manifest needs: not typing (~1.5 ms,
    which cryptography imports anyway, while the registry answers), nor the trust modules
    or cryptography themselves."""
    proc = subprocess.run([sys.executable, "-c", _ORDER, "pull", signed], capture_output=True,
                          text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[:1500]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("order: "))
    order = json.loads(line.removeprefix("order: "))
    before = set(order[:order.index("ebpm.meanwhile")])
    assert _under(before, ("typing", "cryptography", "ebpm.trust", "tomllib")) == []
    assert "typing" in order  # (afterwards: cryptography's)


def _publish_signed(host: str, name: str, size: int, key: str) -> str:
    """A signed package NAME:1.0.0 whose one object layer has `size` random bytes."""
    from ebpm.access import registry_for
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
    from ebpm.package import PackageConfig
    from ebpm.trust.sign import sign_reference

    client = registry_for(host)
    config = PackageConfig(name=name.rsplit("/", 1)[-1], version="1.0.0")
    art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "x.bpf.o", os.urandom(size))],
               annotations={"org.opencontainers.image.version": "1.0.0"})
    for blob in art.blobs:
        client.push_blob(name, blob.descriptor.digest, blob.data)
    client.put_manifest(name, "1.0.0", art.manifest_bytes, MANIFEST_V1)
    sign_reference(f"{host}/{name}:1.0.0", key)
    return f"{host}/{name}:1.0.0"


def test_a_pull_runs_without_the_cycle_collector_and_stays_flat(
        registry: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ebpm pull` turns the cycle collector off while it runs (ebpm/cli/pull.py: a pull's
    garbage has no cycles; its collections only walked what its imports made) and on again
    after; its memory still does not grow with the layer: the peak RSS of a pull of a 20 MiB
    layer is within 10 MiB of a 1 MiB one's (bench/pull.py: 1, 20 and 100 MiB)."""
    import gc
    import shutil

    from ebpm.transfer import pull as pull_module
    from tests.cli import ebpm

    key = keys.generate("flat")
    trust.add_trust(f"{registry.host}/**", key.public_path)
    small, large = (_publish_signed(registry.host, f"flat/size{n}-{os.getpid()}", n << 20,
                                    "flat") for n in (1, 20))
    collecting: list[bool] = []
    real = pull_module.pull

    def watched(*args: object, **kw: object) -> object:
        collecting.append(gc.isenabled())
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pull_module, "pull", watched)
    assert gc.isenabled() and ebpm(capsys, "pull", small).code == 0
    assert collecting == [False] and gc.isenabled()
    peak = {}
    for ref in (small, large):
        shutil.rmtree(os.environ["EBPM_HOME"], ignore_errors=True)
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c",
                               "import sys\nfrom ebpm.cli import main\nsys.exit(main())",
                               "pull", ref], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-800:]
        peak[ref] = int(proc.stderr.strip().splitlines()[-1])  # KiB
    assert peak[large] - peak[small] < 10 << 10, peak


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_stop_while_the_check_is_prepared_is_not_replaced_by_the_fetchs_error(
        stop: type[BaseException], signed: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (SystemExit, ebpm.interrupts) while the check's
    imports run beside the fetch ends the pull as that stop, not with the fetch's own error:
    SIGTERM came out as "unexpected ImportError" (the import it cut short failed the fetch
    thread's), as the fetch's error replaced it."""
    from ebpm.trust import verification

    def stopped(*args: object, **kwargs: object) -> None:
        raise stop(143) if stop is SystemExit else stop()

    monkeypatch.setattr(verification, "prepare", stopped)
    missing = signed.rpartition(":")[0] + ":9.9.9"  # (the fetch fails: no such tag)
    with pytest.raises(stop):
        pull(missing, store=Store(tmp_path / "store"))
