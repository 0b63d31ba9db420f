"""Finding a package's signatures in a registry, in every form, for the store.

Two places can hold signatures of manifest `sha256:<hex>`: cosign's legacy tag
`sha256-<hex>.sig`, and OCI 1.1 referrers (the referrers API, or its fallback tag
`sha256-<hex>`), which hold cosign signature manifests and Sigstore bundles. `fetch()` reads
both, with every blob they name, so that `enforce()` can verify from the store alone. In the
store the legacy manifest keeps its tag and the signature referrers are listed by an image
index at the fallback tag (other referrers such as SBOMs are left out).

`locate()` (registry) and `stored()` (store) only name the signature manifests, fetching no
blob: what the lockfile pins and what the hub watches for new or removed signatures.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from ebpm.errors import NotFoundError
from ebpm.oci.layout import DERIVED
from ebpm.oci.model import Descriptor, Manifest
from ebpm.oci.referrers import build_index, is_signature_referrer, referrers_tag
from ebpm.oci.signature import known_blobs, signature_tag
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.record import field, record

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.oci.layout import Store
    from ebpm.oci.reference import Reference
    from ebpm.oci.remote import Registry

__all__ = ["Signatures", "Located", "complete", "fetch", "keep", "locate", "stored",
           "store_names"]



@record
class Signatures:
    """What a registry holds for one package's signatures: store names to tag, blobs to write."""

    tags: dict[str, Descriptor] = field(default_factory=dict)  # store name -> manifest/index
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes (manifests too)
    # the store names looked up (what is not in `tags` among them is gone from the registry)
    looked: list[str] = field(default_factory=list)

    @property
    def derived(self) -> set[str]:
        """The blobs the store makes from the signature manifests when read (no file)."""
        return {d for desc in self.tags.values()
                for d in desc.annotations.get(DERIVED, "").split()}

    @property
    def partial(self) -> bool:
        """Only the legacy manifest was looked up, not the referrers."""
        return len(self.looked) < 2


@record
class Located:
    """The signature manifests of one package: the legacy `.sig` manifest's digest ('' when
    none) and the digests of its signature referrers (sorted)."""

    legacy: str = ""
    referrers: tuple[str, ...] = ()

    @property
    def signed(self) -> bool:
        return bool(self.legacy or self.referrers)

    @property
    def first(self) -> str:
        """The digest a lockfile pins: the legacy manifest's, else the first referrer's."""
        return self.legacy or (self.referrers[0] if self.referrers else "")


def _signature_referrers(client: Registry, repository: str, digest: str) -> list[Descriptor]:
    return [d for d in client.referrers(repository, digest) if is_signature_referrer(d)]


def locate(client: Registry, repository: str, digest: str, *,
           tags: Collection[str] | None = None) -> Located:
    """Where the registry keeps `digest`'s signatures (no blob read). With the repository's
    `tags` already listed, a `.sig` or fallback tag that is not among them is not asked for
    (the referrers API still is)."""
    legacy = ""
    if tags is None or signature_tag(digest) in tags:
        desc = client.head_manifest(repository, signature_tag(digest))
        legacy = desc.digest if desc is not None else ""
    if tags is not None and referrers_tag(digest) not in tags:
        found = [d for d in client.referrers_api(repository, digest) or []
                 if is_signature_referrer(d)]
    else:
        found = _signature_referrers(client, repository, digest)
    return Located(legacy, tuple(sorted({d.digest for d in found})))


def stored(store: Store, name: str, digest: str) -> Located:
    """The signature manifests the store keeps for `name`@`digest` (as `fetch` left them)."""
    from ebpm.errors import DigestMismatchError, ManifestError, StoreError
    from ebpm.oci.referrers import parse_index

    legacy_name, referrers_name = store_names(name, digest)
    legacy = store.resolve(legacy_name)
    index = store.resolve(referrers_name)
    entries: list[Descriptor] = []
    if index is not None:
        try:
            entries = parse_index(store.read_blob(index.digest, size=index.size))
        except (ManifestError, StoreError, DigestMismatchError):
            entries = []
    return Located(legacy.digest if legacy is not None else "",
                   tuple(sorted({d.digest for d in entries if is_signature_referrer(d)})))


def store_names(name: str, digest: str) -> list[str]:
    """The store names that may hold signatures of `name`@`digest` (registry/repository)."""
    return [f"{name}:{signature_tag(digest)}", f"{name}:{referrers_tag(digest)}"]


def _manifest_with_blobs(client: Registry, store: Store, repository: str, reference: str,
                         found: Signatures, reporter: ProgressReporter, label: str,
                         name: str = "", subject: str = "") -> Descriptor:
    """A signature manifest and the blobs verification reads: at most EBPM_MAX_SIGNATURE_LAYERS
    layers; layers of other media types are counted, never fetched, and the blobs whose bytes
    are known (`known_blobs`: signatures of `name`@`subject`) are not downloaded; the
    descriptor lists them (`DERIVED`: the store keeps no file of them either)."""
    from ebpm.errors import TooLargeError
    from ebpm.limits import limits
    from ebpm.oci.referrers import signature_blobs

    data, media_type, digest = client.get_manifest(repository, reference)
    manifest = Manifest.from_bytes(data, where=f"{label} {digest}")
    cap = limits().signature_layers
    if len(manifest.layers) > cap:
        raise TooLargeError(
            f"{repository}: {label} manifest {digest} has {len(manifest.layers)} layers, more "
            f"than the {cap} cap (EBPM_MAX_SIGNATURE_LAYERS)",
            hint="a hostile or broken registry; nothing was stored (raise the cap if this "
            "package really has that many signers)",
        )
    found.blobs[digest] = data
    wanted, skipped = signature_blobs(manifest)
    if skipped:
        from ebpm import log

        log.get(__name__).info(
            "%s %s: %d layer(s) of other media types ignored (not fetched)", label,
                  digest[:19], skipped)
    known = known_blobs(manifest, name, subject) if name and subject else {}
    for digest_, data_ in known.items():
        found.blobs.setdefault(digest_, data_)
    for desc in wanted:
        if desc.digest in found.blobs or store.holds(desc.digest, desc.size):
            continue
        advance = reporter.task(label, desc.size)
        found.blobs[desc.digest] = client.get_blob(repository, desc.digest, size=desc.size,
                                                   progress=advance)
        reporter.done(label)
    return Descriptor(media_type or manifest.media_type, digest, len(data),
                      annotations={DERIVED: " ".join(sorted(known))} if known else {},
                      artifact_type=manifest.artifact_type or manifest.config.media_type)


def fetch(client: Registry, store: Store, reference_name: str, repository: str, digest: str,
          *, reporter: ProgressReporter = NULL_REPORTER, legacy_first: bool = False
          ) -> Signatures:
    """Every signature of `digest` in `repository`: the legacy `.sig` manifest and the
    signature referrers, with their blobs (verified by digest as they are read).

    `legacy_first`: when the legacy manifest exists, the referrers are not looked up (the
    result is `partial`): cosign verifies from that tag by default, and on a registry without
    the referrers API they cost two requests (the API's 404, then the fallback tag's). The
    caller looks again, fully, when that signature does not verify the package."""
    from ebpm.meanwhile import meanwhile

    found = Signatures()
    legacy_name, referrers_name = store_names(reference_name, digest)
    found.looked.append(legacy_name)
    # unless the legacy manifest may be enough, the referrers are listed while it comes
    listing = None if legacy_first else meanwhile(
        lambda: _signature_referrers(client, repository, digest))
    try:
        found.tags[legacy_name] = _manifest_with_blobs(
            client, store, repository, signature_tag(digest), found, reporter, "signature",
            reference_name, digest)
    except NotFoundError:
        pass
    if legacy_first and legacy_name in found.tags:
        return found
    found.looked.append(referrers_name)
    referrers = (listing() if listing is not None
                 else _signature_referrers(client, repository, digest))
    kept: list[Descriptor] = []
    for desc in referrers:
        try:
            got = _manifest_with_blobs(client, store, repository, desc.digest, found, reporter,
                                       "signature", reference_name, digest)
        except NotFoundError:
            continue  # a stale entry of the fallback index
        kept.append(Descriptor(got.media_type, got.digest, got.size,
                               artifact_type=desc.artifact_type))
    legacy = found.tags.get(legacy_name)
    if kept and legacy is not None and DERIVED in legacy.annotations:
        # a blob a referrer's manifest names too is kept as a file (it outlives the legacy tag)
        named: set[str] = set()
        for child in kept:
            parsed = Manifest.from_bytes(found.blobs[child.digest],
                                         where=f"signature {child.digest}")
            named.update(d.digest for d in (parsed.config, *parsed.layers))
        derived = [d for d in legacy.annotations[DERIVED].split() if d not in named]
        found.tags[legacy_name] = Descriptor(
            legacy.media_type, legacy.digest, legacy.size,
            annotations={DERIVED: " ".join(derived)} if derived else {},
            artifact_type=legacy.artifact_type)
    if kept:
        index = build_index(kept)
        from ebpm.digests import sha256_digest
        from ebpm.oci.model import INDEX_V1

        found.blobs[sha256_digest(index)] = index
        found.tags[referrers_name] = Descriptor(INDEX_V1, sha256_digest(index), len(index))
    return found


def keep(store: Store, found: Signatures) -> None:
    """Put what `fetch` found into the store: its blobs, and each store name it looked up
    pointed at what the registry holds (dropped when the registry holds nothing there)."""
    derived = found.derived
    with store.lock():
        for digest, blob in found.blobs.items():
            if digest not in derived and not store.holds(digest):
                store.write_blob(blob, digest)
        for name in found.looked:
            if name in found.tags:
                store.tag(name, found.tags[name])
            else:
                store.untag(name)


def complete(store: Store, reference: Reference, digest: str, access: RegistryAccess) -> bool:
    """Every signature of `reference`'s package `digest` into the store, when the pull that
    stored it stopped at its legacy `.sig` signature (its verification record says so) and the
    network may be used: for what shows or hands on the signatures (`ebpm verify`, `ebpm
    save`). True when it looked them up (then enforce with `partial=False`)."""
    from ebpm.trust.verification import partly_looked_up

    if access.offline or not partly_looked_up(store, reference.name, digest):
        return False
    client = access.client(reference.registry)
    keep(store, fetch(client, store, reference.name, reference.repository, digest))
    return True
