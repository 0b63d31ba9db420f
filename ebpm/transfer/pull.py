"""Fetch a package (and its signatures) into the local store, verified; or serve it from there.

Every blob a pull downloads streams into a staging directory of the store, hashed as it comes
(memory stays flat), and moves into place only once verified; the store's index names the
package only after its signature policy is satisfied: a failed pull leaves no entry behind
(and the staging directory of a pull that was killed is removed by the next one). With offline
mode the store is the only source and no network call is made.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from functools import cached_property

from ebpm.errors import (
    DigestMismatchError,
    ManifestError,
    NotFoundError,
    OfflineError,
    SignatureError,
    StoreError,
)
from ebpm.files import read_bytes
from ebpm.oci.model import (
    BPF_OBJECT_TYPE,
    BTF_TYPE,
    CONFIG_TYPE,
    COSIGN_SIMPLESIGNING_TYPE,
    README_TYPE,
    WASM_TYPE,
    Descriptor,
    Manifest,
    verify_digest,
)
from ebpm.oci.reference import Reference
from ebpm.oci.signature import signature_tag
from ebpm.package import PackageConfig
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import field, record
from ebpm.versions import is_version, latest_version, version_from_tag

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.oci.remote import Registry
    from ebpm.trust.discovery import Signatures
    from ebpm.trust.policy import Policy
    from ebpm.trust.verification import Verification

__all__ = [
    "PulledPackage", "pull", "package_config", "signature_tag", "store_name", "resolve_tag",
    "find_cached",
]

# what the user's stop raises: Ctrl-C, and SIGTERM once a command runs (ebpm.interrupts)
_STOPPED = (KeyboardInterrupt, SystemExit)


@record
class PulledPackage:
    """A package available in the store, its blobs checked. The layers' bytes (`object`,
    `btf`, `wasm`, `readme`) are read from the store, verified again, when first used: a pull
    that only stores the package never holds a large layer in memory."""

    reference: Reference  # tag (when known) and digest
    digest: str
    manifest: Manifest
    config: PackageConfig
    cached: bool  # served from the store without asking the registry
    verification: Verification | None = None  # set once the trust policy was enforced
    store_root: str | None = field(default=None, repr=False, compare=False)
    layers: tuple[tuple[str, Descriptor], ...] = field(default=(), repr=False, compare=False)

    def _layer(self, kind: str) -> bytes | None:
        from ebpm.oci.layout import Store

        desc = dict(self.layers).get(kind)
        if desc is None or self.store_root is None:
            return None
        return Store(self.store_root).read_blob(desc.digest, size=desc.size)

    @cached_property
    def object(self) -> bytes | None:
        return self._layer("object")

    @cached_property
    def btf(self) -> bytes | None:
        return self._layer("btf")

    @cached_property
    def wasm(self) -> bytes | None:
        return self._layer("wasm")

    @cached_property
    def readme(self) -> bytes | None:
        return self._layer("readme")


MAX_WASM_IMAGE = 64 << 20  # bytes: the largest wasm layer of an ecli image pulled

_LABELS = {CONFIG_TYPE: "config", COSIGN_SIMPLESIGNING_TYPE: "signature"}


def store_name(reference: Reference) -> str:
    """The name an index entry gets: registry/repository:tag, or @digest without a tag."""
    if reference.tag:
        return f"{reference.name}:{reference.tag}"
    return f"{reference.name}@{reference.digest}"


def resolve_tag(reference: Reference, store: Store, offline: bool,
                 client: Registry | None) -> Reference:
    """Give a reference without tag or digest the highest published version."""
    if reference.tag or reference.digest:
        return reference
    tags: list[str] | None
    if offline:
        tags = store.get_tags(reference.name) or [
            e.tag for e in store.entries() if e.repository == reference.name and e.tag
        ]
    else:
        assert client is not None
        tags = client.list_tags(reference.repository)
        store.put_tags(reference.name, tags)
    best = latest_version(tags or [])
    if best is None:
        if "latest" in (tags or []):
            return reference.with_tag("latest")
        raise NotFoundError(
            f"{reference.name}: no versions" + (" in the store" if offline else ""),
            hint="name a tag (REPO:1.0.0)" + ("" if not offline else " or pull it online first"),
        )
    return reference.with_tag(best)


def find_cached(store: Store, reference: Reference) -> Descriptor | None:
    if reference.tag:
        desc = store.resolve(store_name(reference))
        if desc is not None and (not reference.digest or desc.digest == reference.digest):
            return desc
        if not reference.digest:
            return None
    return store.find(reference.name, reference.digest)


def _check(manifest: Manifest, *, where: str) -> bool:
    """Refuse what is neither an ebpm package nor an ecli wasm image; True for an image."""
    from ebpm.oci.artifact import check_package_manifest

    if manifest.config.media_type == CONFIG_TYPE:  # ours (formats need not be imported)
        check_package_manifest(manifest, where=where)
        return False
    from ebpm.transfer.formats import WASM_IMAGE_LAYER_TYPE, manifest_format

    kind = manifest_format(manifest.config.media_type, [d.media_type for d in manifest.layers])
    if kind != "wasm-image":
        check_package_manifest(manifest, where=where)
        return False
    if len(manifest.layers) != 1 or manifest.layers[0].media_type != WASM_IMAGE_LAYER_TYPE:
        raise ManifestError(f"{where}: a wasm image must hold exactly one wasm layer")
    if manifest.layers[0].size > MAX_WASM_IMAGE:
        raise ManifestError(f"{where}: wasm layer of {manifest.layers[0].size} bytes exceeds "
                            "the cap")
    return True


def _image_config(reference: Reference) -> PackageConfig:
    """An ecli wasm image carries no metadata (its config is `{}`): name it after the
    repository and version it by a semver tag (the module brings everything else)."""
    from ebpm.transfer.formats import package_name

    tag = version_from_tag(reference.tag) if reference.tag else ""
    version = tag if is_version(tag) else "0.0.0"
    return PackageConfig(name=package_name(reference.repository.rsplit("/", 1)[-1]),
                         version=version)


def package_config(reference: Reference, manifest: Manifest,
                   read: Callable[[Descriptor], bytes]) -> PackageConfig:
    """The config of an ebpm package (its config blob) or of an ecli wasm image (made from
    its one wasm layer); `read` fetches a blob, verified (unless the manifest embeds it)."""
    if _check(manifest, where=str(reference)):
        return _image_config(reference)
    embedded = manifest.config.data
    return PackageConfig.from_json(embedded if embedded is not None else read(manifest.config))


def _read(store: Store, reference: Reference, desc: Descriptor, *, cached: bool,
          checked: set[str] | None = None) -> PulledPackage:
    """The package `desc` names in the store, every blob checked (hashed in chunks) unless it is
    in `checked` (hashed by this pull already; the ones hashed here are added); the layers'
    bytes are read later, when used."""
    checked = set() if checked is None else checked
    _, manifest = store.read_manifest(desc.digest, size=desc.size)
    image = _check(manifest, where=str(reference))
    for blob in (manifest.config, *manifest.layers):
        if blob.digest not in checked:
            store.check_blob(blob.digest, size=blob.size)
            checked.add(blob.digest)
    config = None if image else PackageConfig.from_json(
        store.read_blob(manifest.config.digest, size=manifest.config.size))
    return _package(store, reference, desc.digest, manifest, config, cached=cached)


def _package(store: Store, reference: Reference, digest: str, manifest: Manifest,
             config: PackageConfig | None, *, cached: bool,
             verification: Verification | None = None) -> PulledPackage:
    """The package from its checked manifest and config (None: an ecli wasm image's, made from
    the reference)."""
    if config is None:
        layers: tuple[tuple[str, Descriptor], ...] = (("wasm", manifest.layers[0]),)
        config = _image_config(reference)
    else:
        kinds = (("object", BPF_OBJECT_TYPE), ("btf", BTF_TYPE), ("wasm", WASM_TYPE),
                 ("readme", README_TYPE))
        found = ((kind, manifest.layer(media_type)) for kind, media_type in kinds)
        layers = tuple((kind, d) for kind, d in found if d is not None)
    return PulledPackage(
        reference=reference.with_digest(digest),
        digest=digest,
        manifest=manifest,
        config=config,
        cached=cached,
        verification=verification,
        store_root=store.root,
        layers=layers,
    )


def _enforce(store: Store, reference: Reference, digest: str,
             allow_unsigned: bool, checked: set[str], policy: Policy | None,
             partial: bool | None = None, known: dict[str, bytes] | None = None
             ) -> Verification:
    from ebpm.trust.verification import enforce

    return enforce(store, reference, digest, allow_unsigned=allow_unsigned, checked=checked,
                   policy=policy, partial=partial, known=known)


def _start_blobs(
    client: Registry, store: Store, repository: str, descriptors: list[Descriptor],
    reporter: ProgressReporter, staging: str, checked: set[str],
) -> Callable[[], dict[str, str]]:
    """Start streaming every blob the store lacks into `staging`, all at once (a thread and a
    kept connection each), hashed and verified as it comes (memory stays flat whatever its
    size). The function returned waits for them all (each, even after one failed: its file
    is in `staging`) and gives digest -> the staged file. Every blob fetched, or found intact
    in the store, is added to `checked` (not hashed again by this pull). A blob the manifest
    embeds (a package's config: `Descriptor.data`, checked against its digest when the
    manifest was parsed) is staged from there: no request."""
    from ebpm.meanwhile import meanwhile

    wanted: dict[str, Descriptor] = {}
    embedded: dict[str, str] = {}
    for desc in descriptors:
        if desc.digest in wanted or desc.digest in embedded or desc.digest in checked:
            continue
        if store.holds(desc.digest, desc.size):
            checked.add(desc.digest)
            continue
        if desc.data is not None:
            embedded[desc.digest] = _stage(staging, desc.digest, desc.data)
            continue
        wanted[desc.digest] = desc

    def fetch(desc: Descriptor) -> str:
        label = desc.title or _LABELS.get(desc.media_type, desc.digest[7:19])
        advance = reporter.task(label, desc.size)
        path = os.path.join(staging, desc.digest.partition(":")[2])
        with open(path, "wb") as out:
            client.fetch_blob(repository, desc.digest, out, size=desc.size, progress=advance)
        reporter.done(label)
        return path

    pending = [(d.digest, meanwhile(functools.partial(fetch, d))) for d in wanted.values()]

    def wait() -> dict[str, str]:
        fetched: dict[str, str] = dict(embedded)
        error: BaseException | None = None
        for digest, result in pending:
            try:
                fetched[digest] = result()
            except _STOPPED:  # Ctrl-C, SIGTERM: now, not once the other downloads are done
                raise
            except BaseException as err:
                error = error or err
        if error is not None:
            raise error
        checked.update(fetched)
        return fetched

    return wait


def pull(
    ref: str | Reference,
    *,
    access: RegistryAccess | None = None,
    prefer_cache: bool = False,
    allow_unsigned: bool = False,
    store: Store | None = None,
    reporter: ProgressReporter = NULL_REPORTER,
    policy: Policy | None = None,
    every_signature: bool = False,
) -> PulledPackage:
    """Make the package `ref` available in the store and return it, verified.

    `prefer_cache`: a tag already in the store is served from there without asking the
    registry (published version tags never change). `access` (default: from the environment)
    holds the TLS settings; with `access.offline` no network call is made at all.
    `policy`: the trust policy already loaded (default: read now).

    Signatures: the legacy `.sig` manifest first; when it verifies the package, nothing else
    is looked up (the referrers API and its fallback tag are asked only when there is no
    legacy signature or it does not verify the package: then every signature is).
    `every_signature`: look up the referrers too in any case (for what lists every signer).
    """
    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.oci.layout import Store

    reference = parse_reference(ref) if isinstance(ref, str) else ref
    store = store or Store()
    access = access or RegistryAccess.from_env()
    offline = access.offline

    if offline or (prefer_cache and (reference.tag or reference.digest)):
        resolved = resolve_tag(reference, store, True, None) if offline else reference
        desc = find_cached(store, resolved)
        if desc is not None:
            checked: set[str] = set()
            try:
                package = _read(store, resolved, desc, cached=True, checked=checked)
            except (StoreError, DigestMismatchError):
                if offline:
                    raise
                package = None  # damaged or incomplete in the store: fetch it again below
            if package is not None:
                verification = _enforce(store, package.reference, desc.digest, allow_unsigned,
                                        checked, policy)
                return _with(package, verification)
        if offline:
            raise OfflineError(
                f"{resolved}: not in the store (offline)",
                hint="pull it once while online, or `ebpm load` a saved archive",
            )

    client = access.client(reference.registry)
    reference = resolve_tag(reference, store, False, client)
    stored = find_cached(store, reference)  # (its check under this policy may be recorded)
    new = stored is None and not allow_unsigned
    if new:  # its check imports cryptography: whose SHA-256 then makes the digests too
        from ebpm.digests import hash_with_cryptography

        hash_with_cryptography()
    # the signatures are looked up while the package comes (one more kept connection): from
    # the start when the digest is known (a lock, REF@DIGEST), else once the manifest names it
    early = _signatures(client, store, reference, reference.digest, reporter,
                        legacy_first=not every_signature) if reference.digest else None
    with store.staging() as staging:
        fetched: set[str] = set()  # each blob hashed once by this pull (as it streams in)

        def arrive() -> _Coming:
            data, digest, manifest, image = _manifest(client, reference)
            return _start(client, store, reference, data, digest, manifest, image, staging,
                          reporter, fetched, early, legacy_first=not every_signature)

        if policy is None:  # read while the package comes (the registry's error, if any, first)
            from ebpm.meanwhile import meanwhile

            arriving = meanwhile(arrive)
            try:
                if new:  # the digests' SHA-256 (and the check's), imported while it comes
                    import cryptography.hazmat.primitives.hashes  # noqa: F401
                from ebpm.trust.policy import load_policy
                from ebpm.trust.verification import prepare

                policy = load_policy()
                # what the check takes is imported while the package comes (unless the digest
                # the store names for this reference was verified under this policy)
                known = reference.digest or (stored.digest if stored is not None else "")
                prepare(store, reference, known, policy)
            except BaseException as err:
                if not isinstance(err, _STOPPED):  # (Ctrl-C, SIGTERM: out now, not once the
                    arriving().blobs_quietly()  # registry answers; the threads are daemons)
                raise
            coming = arriving()
        else:  # the caller's policy (an install's workers): the check's imports before the lock
            coming = arrive()
            from ebpm.trust.verification import prepare

            try:
                prepare(store, reference, coming.digest, policy)
            except BaseException as err:
                if not isinstance(err, _STOPPED):
                    coming.blobs_quietly()
                raise
        package = None
        try:
            package = _store(store, reference, coming, fetched,
                             allow_unsigned=allow_unsigned, policy=policy)
        except SignatureError:
            if not coming.signatures().partial:
                raise
    if package is not None and (not coming.signatures().partial or (
            package.verification is not None and package.verification.verified)):
        return package
    # the legacy signature did not verify the package: every signature, referrers too
    with store.staging() as staging:
        fetched = set()
        signatures = _signatures(client, store, reference, coming.digest, reporter,
                                 legacy_first=False)
        coming = _start(client, store, reference, coming.data, coming.digest, coming.manifest,
                        coming.image, staging, reporter, fetched, signatures)
        return _store(store, reference, coming, fetched,
                      allow_unsigned=allow_unsigned, policy=policy)


def _manifest(client: Registry, reference: Reference) -> tuple[bytes, str, Manifest, bool]:
    """The package's manifest from the registry, checked: its bytes, digest, parsed form, and
    whether it is an ecli wasm image."""
    data, _, digest = client.get_manifest(reference.repository, reference.identifier)
    if reference.digest and digest != reference.digest:
        raise DigestMismatchError(f"{reference}: registry returned manifest {digest}")
    manifest = Manifest.from_bytes(data, where=str(reference))
    return data, digest, manifest, _check(manifest, where=str(reference))


@record
class _Coming:
    """A package on its way: its manifest, and the functions that wait for its signatures
    and for its blobs (digest -> the staged file)."""

    data: bytes
    digest: str
    manifest: Manifest
    image: bool
    staging: str  # where the blobs come
    signatures: Callable[[], Signatures]
    blobs: Callable[[], dict[str, str]]

    def blobs_quietly(self) -> None:
        """Wait for the blobs (their files are in the staging directory), whatever came."""
        with contextlib.suppress(Exception):
            self.blobs()


def _start(client: Registry, store: Store, reference: Reference, data: bytes, digest: str,
           manifest: Manifest, image: bool, staging: str, reporter: ProgressReporter,
           checked: set[str], signatures: Callable[[], Signatures] | None, *,
           legacy_first: bool = True) -> _Coming:
    """Start fetching the package's blobs, then (unless started already) its signatures: the
    blobs first, as the registry takes longest to serve them."""
    blobs = _start_blobs(client, store, reference.repository,
                         [manifest.config, *manifest.layers], reporter, staging, checked)
    if signatures is None:
        signatures = _signatures(client, store, reference, digest, reporter,
                                 legacy_first=legacy_first)
    return _Coming(data, digest, manifest, image, staging, signatures, blobs)


def _signatures(client: Registry, store: Store, reference: Reference, digest: str,
                reporter: ProgressReporter, *, legacy_first: bool = True
                ) -> Callable[[], Signatures]:
    """Start looking up the signatures of `digest` (in a thread); the function returned waits
    for them."""
    from ebpm.meanwhile import meanwhile
    from ebpm.trust import discovery

    return meanwhile(lambda: discovery.fetch(client, store, reference.name,
                                              reference.repository, digest,
                                              reporter=reporter, legacy_first=legacy_first))


def _store(store: Store, reference: Reference, coming: _Coming,
           checked: set[str], *, allow_unsigned: bool, policy: Policy) -> PulledPackage:
    """Wait for the package and its signatures, store them, check them against the policy,
    then name the package in the index."""
    data, digest, manifest = coming.data, coming.digest, coming.manifest
    blobs = coming.blobs()
    config_path = blobs.get(manifest.config.digest)
    config_bytes = (manifest.config.data if manifest.config.data is not None
                    else read_bytes(config_path) if config_path is not None
                    else store.read_blob(manifest.config.digest))
    # refuse unreadable metadata before storing
    config = None if coming.image else PackageConfig.from_json(config_bytes)
    signatures = coming.signatures()
    signature_names = signatures.looked

    reference = reference.with_digest(digest)
    desc = Descriptor(manifest.media_type, digest, len(data), artifact_type=manifest.artifact_type)
    # the manifest and the signatures' blobs are staged beside the downloads (written before
    # the lock is taken; under it, each file is only moved into place)
    derived = signatures.derived  # (the store makes them when read: no file of their own)
    for d, b in ((digest, data), *signatures.blobs.items()):
        if d not in blobs and d not in derived:
            verify_digest(b, d)
            blobs[d] = _stage(coming.staging, d, b)
    # the batch: one index write and one flush, after the lock is released
    with store.batch(), store.lock():
        written = [d for d, path in blobs.items() if store.adopt_blob(path, d)]
        for name in signature_names:  # the registry's signatures replace what the store had
            if name in signatures.tags:
                store.tag(name, signatures.tags[name])
            else:
                store.untag(name)
        try:
            # the check reads the manifest and the signatures' blobs as they came (verified
            # against the digests just stored), not back from the store
            verification = _enforce(store, reference, digest, allow_unsigned, checked, policy,
                                    partial=signatures.partial,
                                    known={digest: data, **signatures.blobs})
        except BaseException:
            for d in written:  # leave nothing of a refused package behind
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(store.blob_path(d))
            for name in signature_names:
                store.untag(name)
            raise
        store.tag(store_name(reference), desc)
    # what was stored is what was checked: the manifest and config as they came, every blob
    # hashed as it streamed in (the layers are read, verified again, when used)
    return _package(store, reference, digest, manifest, config, cached=False,
                    verification=verification)


def _stage(staging: str, digest: str, data: bytes) -> str:
    """Write `data` (a blob already checked against `digest`) into `staging`; its path."""
    path = os.path.join(staging, digest.partition(":")[2])
    with open(path, "wb") as out:
        out.write(data)
    return path


def _with(package: PulledPackage, verification: Verification) -> PulledPackage:
    from ebpm.record import replace

    return replace(package, verification=verification)
