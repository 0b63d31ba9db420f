"""OCI 1.1 referrers: signature manifests that name a package in their `subject`.

A registry with the referrers API answers `GET /v2/<name>/referrers/<digest>` with an image
index of the manifests whose `subject` is `<digest>`; one without it (distribution 2.8, most
mirrors) keeps that index at the fallback tag `sha256-<hex>` (the digest with `:` written `-`),
which clients update when they push a referrer. The signature referrers ebpm reads:

- cosign's signature manifests (`cosign sign --registry-referrers-mode=oci-1-1`, `ebpm sign
  --referrers`): artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`, simple-signing
  layers exactly as in the legacy `sha256-<hex>.sig` manifest;
- Sigstore bundles (current cosign): artifact type `application/vnd.dev.sigstore.bundle*`
  (v0.1-v0.3 spellings), one layer holding the bundle's JSON.

Other referrers (SBOMs, attestations) are ignored. Pure: no I/O.
"""

from __future__ import annotations

import json

from ebpm.canonical import canonical_json
from ebpm.errors import ManifestError
from ebpm.oci.model import INDEX_V1, Descriptor, Manifest

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "COSIGN_SIGNATURE_ARTIFACT", "BUNDLE_TYPE_PREFIX", "referrers_tag", "is_bundle_type",
    "is_signature_referrer", "artifact_type_of", "parse_index", "build_index",
    "is_auxiliary_tag", "signature_blobs",
]

COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
BUNDLE_TYPE_PREFIX = "application/vnd.dev.sigstore.bundle"
_SUFFIXES = (".sig", ".att", ".sbom")


def referrers_tag(digest: str) -> str:
    """The referrers fallback tag of a manifest digest: `sha256-<hex>`."""
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}"


def is_auxiliary_tag(tag: str) -> bool:
    """Tags that hold signatures, attestations, SBOMs or referrer indexes, not versions:
    `sha256-<hex>`, `sha256-<hex>.sig`, `.att`, `.sbom`."""
    stem = tag
    for suffix in _SUFFIXES:
        if tag.endswith(suffix):
            stem = tag[: -len(suffix)]
            break
    algorithm, dash, hexpart = stem.partition("-")
    return (algorithm == "sha256" and dash == "-" and len(hexpart) == 64
            and all(c in "0123456789abcdef" for c in hexpart))


def is_bundle_type(media_type: str) -> bool:
    """`application/vnd.dev.sigstore.bundle+json;version=0.1|0.2|0.3` and
    `application/vnd.dev.sigstore.bundle.v0.3+json`."""
    return media_type.startswith(BUNDLE_TYPE_PREFIX)


def artifact_type_of(manifest: Manifest) -> str:
    """A manifest's artifact type: `artifactType`, else its config's media type (OCI 1.1)."""
    return manifest.artifact_type or manifest.config.media_type


def signature_blobs(manifest: Manifest) -> tuple[tuple[Descriptor, ...], int]:
    """The blobs of a signature manifest that verification reads (its config, simple-signing
    layers and Sigstore bundles), and how many other layers it has (never fetched)."""
    from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE

    wanted = tuple(d for d in manifest.layers
                   if d.media_type == COSIGN_SIMPLESIGNING_TYPE or is_bundle_type(d.media_type))
    return (manifest.config, *wanted), len(manifest.layers) - len(wanted)


def is_signature_referrer(desc: Descriptor) -> bool:
    """An index entry that is a signature ebpm can check (by its artifact type)."""
    kind = desc.artifact_type
    return kind == COSIGN_SIGNATURE_ARTIFACT or is_bundle_type(kind)


def parse_index(data: bytes, *, where: str = "referrers index") -> list[Descriptor]:
    """The manifest descriptors of an image index (a referrers response or fallback tag)."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise ManifestError(f"{where}: not valid JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests", []), list):
        raise ManifestError(f"{where}: not an image index")
    return [Descriptor.from_dict(d, where=f"{where}: manifests[{n}]")
            for n, d in enumerate(doc.get("manifests") or [])]


def build_index(descriptors: list[Descriptor]) -> bytes:
    """An image index of `descriptors` (sorted by digest, no duplicates): how the store keeps a
    package's signature referrers, at the fallback tag."""
    unique = {d.digest: d for d in descriptors}
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": INDEX_V1,
        "manifests": [unique[k].to_dict() for k in sorted(unique)],
    }
    return canonical_json(doc)
