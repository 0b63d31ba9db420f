"""OCI content model shared by the registry client and the store: media types, descriptors,
manifests, and digest verification."""

from __future__ import annotations

import binascii
import json

from ebpm.canonical import canonical_json
from ebpm.digests import sha256_digest  # (named here too: manifests' digests are made with it)
from ebpm.errors import DigestMismatchError, ManifestError, TooLargeError
from ebpm.oci.reference import DIGEST_RE
from ebpm.record import field, record

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "MANIFEST_V1",
    "INDEX_V1",
    "DOCKER_MANIFEST_V2",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_ACCEPT",
    "ARTIFACT_TYPE",
    "CONFIG_TYPE",
    "BPF_OBJECT_TYPE",
    "BTF_TYPE",
    "WASM_TYPE",
    "README_TYPE",
    "EMPTY_CONFIG_TYPE",
    "COSIGN_SIMPLESIGNING_TYPE",
    "URL_FILE_TYPE",
    "URL_ANNOTATION",
    "TITLE",
    "MAX_MANIFEST_SIZE",
    "MAX_CONFIG_SIZE",
    "Descriptor",
    "Manifest",
    "sha256_digest",
    "verify_digest",
    "canonical_json",
]

MANIFEST_V1 = "application/vnd.oci.image.manifest.v1+json"
INDEX_V1 = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([MANIFEST_V1, INDEX_V1, DOCKER_MANIFEST_V2, DOCKER_MANIFEST_LIST])

ARTIFACT_TYPE = "application/vnd.ebpm.package.v1"
CONFIG_TYPE = "application/vnd.ebpm.package.config.v1+json"
BPF_OBJECT_TYPE = "application/vnd.ebpm.bpf.object.v1+elf"
BTF_TYPE = "application/vnd.ebpm.btf.v1"
WASM_TYPE = "application/vnd.ebpm.wasm.module.v1+wasm"
README_TYPE = "text/markdown"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"
COSIGN_SIMPLESIGNING_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
TITLE = "org.opencontainers.image.title"
URL_FILE_TYPE = "application/vnd.ebpm.url-file.v1"  # a url dependency's file, wrapped
URL_ANNOTATION = "dev.ebpm.url"  # the URL a stored url file came from

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # distribution's own limit; EBPM_MAX_MANIFEST_SIZE's default
MAX_CONFIG_SIZE = 4 * 1024 * 1024


def verify_digest(data: bytes, digest: str, size: int | None = None, *, what: str = "blob") -> None:
    """Raise DigestMismatchError unless `data` has exactly this digest (and size, if given)."""
    if size is not None and size >= 0 and len(data) != size:
        raise DigestMismatchError(
            f"{what} {digest}: got {len(data)} bytes, want {size}",
            hint="the download was truncated or the content was changed; try again",
        )
    algorithm, _, _ = digest.partition(":")
    if algorithm != "sha256":
        raise DigestMismatchError(f"{what} {digest}: unsupported digest algorithm {algorithm!r}")
    got = sha256_digest(data)
    if got != digest:
        raise DigestMismatchError(
            f"{what}: got digest {got}, want {digest}",
            hint="the content was corrupted or tampered with; nothing was stored",
        )


@record
class Descriptor:
    """An OCI content descriptor. `data`: the content itself, embedded (image-spec 1.1's
    `data` field, base64 in JSON): checked against `digest` and `size` when parsed, so a
    descriptor that carries it always carries exactly the blob it names."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str = ""
    data: bytes | None = field(default=None, repr=False)

    @property
    def title(self) -> str:
        return self.annotations.get(TITLE, "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.data is not None:
            out["data"] = binascii.b2a_base64(self.data, newline=False).decode("ascii")
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected an object")
        media_type, digest, size = data.get("mediaType"), data.get("digest"), data.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str):
            raise ManifestError(f"{where}: mediaType and digest are required")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}: size must be a non-negative integer")
        if not DIGEST_RE.fullmatch(digest):
            raise ManifestError(f"{where}: unsupported digest {digest!r}")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{where}: annotations must map strings to strings")
        embedded = data.get("data")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=dict(annotations),
            artifact_type=str(data.get("artifactType", "")),
            data=None if embedded is None else _embedded(embedded, digest, size, where),
        )


def _embedded(text: Any, digest: str, size: int, where: str) -> bytes:
    """A descriptor's `data` decoded and checked against its digest and size: a manifest
    whose embedded content is not the blob it names is refused (never fetched instead)."""
    try:
        if not isinstance(text, str):
            raise ValueError("not a string")
        blob = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (ValueError, UnicodeEncodeError) as err:  # binascii.Error is a ValueError
        raise ManifestError(f"{where}: embedded data is not base64 ({err})") from None
    verify_digest(blob, digest, size, what=f"{where}: embedded data")
    return blob


@record
class Manifest:
    """An OCI image manifest (the shape of every ebpm package and signature)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None
    media_type: str = MANIFEST_V1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_dict(),
            "layers": [layer.to_dict() for layer in self.layers],
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject is not None:
            out["subject"] = self.subject.to_dict()
        return out

    def to_bytes(self) -> bytes:
        """Serialized once, compact, sorted keys: the digest is the sha256 of these bytes."""
        return canonical_json(self.to_dict())

    def layer(self, media_type: str) -> Descriptor | None:
        return next((d for d in self.layers if d.media_type == media_type), None)

    @classmethod
    def from_bytes(cls, data: bytes, *, where: str = "manifest") -> Manifest:
        from ebpm.limits import limits

        cap = limits().manifest_size
        if len(data) > cap:
            raise TooLargeError(
                f"{where}: {len(data)} bytes exceeds the {cap}-byte cap (EBPM_MAX_MANIFEST_SIZE)",
                hint="raise EBPM_MAX_MANIFEST_SIZE if you trust where it comes from")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise ManifestError(f"{where}: not valid JSON: {err}") from err
        if not isinstance(doc, dict):
            raise ManifestError(f"{where}: expected a JSON object")
        if doc.get("schemaVersion") != 2:
            raise ManifestError(f"{where}: schemaVersion must be 2")
        media_type = doc.get("mediaType", MANIFEST_V1)
        if media_type in (INDEX_V1, DOCKER_MANIFEST_LIST) or "manifests" in doc:
            raise ManifestError(
                f"{where}: this is an image index, not a package manifest",
                hint="ebpm packages are single OCI manifests; is this a container image?",
            )
        if media_type not in (MANIFEST_V1, DOCKER_MANIFEST_V2):
            raise ManifestError(f"{where}: unsupported media type {media_type!r}")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError(f"{where}: layers must be a list")
        annotations = doc.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise ManifestError(f"{where}: annotations must be an object")
        subject = doc.get("subject")
        return cls(
            config=Descriptor.from_dict(doc.get("config"), where=f"{where}: config"),
            layers=tuple(
                Descriptor.from_dict(d, where=f"{where}: layer {i}") for i, d in enumerate(layers)
            ),
            artifact_type=str(doc.get("artifactType", "")),
            annotations={str(k): str(v) for k, v in annotations.items()},
            subject=Descriptor.from_dict(subject, where=f"{where}: subject") if subject else None,
            media_type=media_type,
        )
