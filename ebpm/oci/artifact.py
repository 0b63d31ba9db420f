"""Artifact format v1: pack a package's blobs into an OCI image manifest, and read one back.

The exact bytes are documented in docs/format.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ebpm.digests import sha256_digest
from ebpm.errors import ManifestError
from ebpm.oci.model import (
    ARTIFACT_TYPE,
    BPF_OBJECT_TYPE,
    BTF_TYPE,
    CONFIG_TYPE,
    EMPTY_CONFIG_TYPE,
    MANIFEST_V1,
    MAX_CONFIG_SIZE,
    README_TYPE,
    TITLE,
    WASM_TYPE,
    Descriptor,
    Manifest,
)
from ebpm.record import record

__all__ = ["Blob", "Artifact", "Layer", "pack", "check_package_manifest", "safe_title",
           "created_from_epoch", "LAYER_TYPES", "MAX_EMBEDDED_CONFIG", "MAX_EMBEDDED",
           "check_total_size", "wrap_file"]

LAYER_TYPES = (BPF_OBJECT_TYPE, BTF_TYPE, WASM_TYPE, README_TYPE)
# a config up to this size travels inside the manifest too (the descriptor's `data`, OCI
# image-spec 1.1): a pull takes it from there instead of asking for the blob (docs/format.md)
MAX_EMBEDDED_CONFIG = 4 << 10
# and so are small layers, in order, while the bytes embedded in one manifest (config
# included, before base64) add up to at most this: the spec's rule for `data`, "small blobs,
# where the fixed roundtrip cost is significant" (the loopback registry spends 1.9-2.3 ms of
# CPU on any blob GET, 0.8 ms on a manifest); the manifest stays far below the manifest cap
# (EBPM_MAX_MANIFEST_SIZE, 4 MiB) and small for the readers that want only the metadata
MAX_EMBEDDED = 64 << 10
# a layer title's characters (a set, not a pattern: compiling one cost a pull ~0.1 ms)
_TITLE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-")


@record
class Blob:
    descriptor: Descriptor
    data: bytes


@record
class Layer:
    """What a packer hands in: bytes, media type and file name."""

    media_type: str
    title: str
    data: bytes


@record
class Artifact:
    """A packed package: the manifest's exact bytes, its digest, and every blob it names."""

    manifest: Manifest
    manifest_bytes: bytes
    digest: str
    config: Blob
    layers: tuple[Blob, ...]

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)


def safe_title(title: str) -> str:
    """A layer title is a plain file name: no directories, no `..`, nothing hidden."""
    if not (0 < len(title) <= 255 and _TITLE_CHARS.issuperset(title)) or title.startswith("."):
        raise ManifestError(
            f"layer title {title!r} is not a plain file name",
            hint="refusing a package that could write outside its directory",
        )
    return title


def created_from_epoch(epoch: str | None) -> str:
    """RFC 3339 UTC time of SOURCE_DATE_EPOCH, or '' when unset (no wall-clock in digests)."""
    if not epoch:
        return ""
    try:
        seconds = int(epoch)
    except ValueError as err:
        raise ManifestError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from err
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def pack(
    config_json: bytes,
    layers: list[Layer],
    *,
    annotations: dict[str, str],
    embed: bool = True,
) -> Artifact:
    """Build the manifest for a config blob and layers; order of `layers` is kept.

    `embed`: a config of at most MAX_EMBEDDED_CONFIG bytes is also embedded in its
    descriptor, and so are the layers, in order, while the manifest's embedded bytes add up
    to at most MAX_EMBEDDED (every blob is still pushed: clients that ignore `data` fetch it
    as before). Git builds pass False: their manifests keep the bytes their locks pin."""
    embedded = config_json if embed and len(config_json) <= MAX_EMBEDDED_CONFIG else None
    config = Blob(Descriptor(CONFIG_TYPE, sha256_digest(config_json), len(config_json),
                             data=embedded), config_json)
    blobs = []
    room = MAX_EMBEDDED - len(embedded or b"") if embed else -1
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise ManifestError(f"unknown layer media type {layer.media_type!r}")
        inline = len(layer.data) <= room
        room = room - len(layer.data) if inline else -1  # (the first that does not fit ends it)
        desc = Descriptor(
            layer.media_type,
            sha256_digest(layer.data),
            len(layer.data),
            annotations={TITLE: safe_title(layer.title)},
            data=layer.data if inline else None,
        )
        blobs.append(Blob(desc, layer.data))
    manifest = Manifest(
        config=config.descriptor,
        layers=tuple(b.descriptor for b in blobs),
        artifact_type=ARTIFACT_TYPE,
        annotations={k: v for k, v in annotations.items() if v},
    )
    data = manifest.to_bytes()
    return Artifact(manifest, data, sha256_digest(data), config, tuple(blobs))


def wrap_file(digest: str, size: int, *, artifact_type: str,
              annotations: dict[str, str]) -> tuple[bytes, bytes]:
    """(manifest, config): a small OCI manifest whose one layer is a plain file (a url
    dependency's, a git bundle), so an index entry can name it; the config is the empty one."""
    from ebpm.canonical import canonical_json

    empty = b"{}"
    body = canonical_json({
        "schemaVersion": 2, "mediaType": MANIFEST_V1, "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_CONFIG_TYPE, "digest": sha256_digest(empty),
                   "size": len(empty)},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest, "size": size,
                    "annotations": annotations}],
    })
    return body, empty


def check_package_manifest(manifest: Manifest, *, where: str = "manifest") -> None:
    """Refuse anything that is not an ebpm package v1 before fetching its blobs."""
    if manifest.artifact_type != ARTIFACT_TYPE or manifest.config.media_type != CONFIG_TYPE:
        kind = manifest.artifact_type or manifest.config.media_type
        raise ManifestError(
            f"{where}: not an ebpm package (artifact type {kind!r})",
            hint="is this a container image or another tool's artifact?",
        )
    if manifest.config.size > MAX_CONFIG_SIZE:
        raise ManifestError(f"{where}: config of {manifest.config.size} bytes exceeds the cap")
    check_total_size(manifest, where=where)
    seen: set[str] = set()
    for layer in manifest.layers:
        title = safe_title(layer.title) if layer.title else ""
        if title in seen:
            raise ManifestError(f"{where}: two layers are titled {title!r}")
        seen.add(title)
    if manifest.layer(BPF_OBJECT_TYPE) is None and manifest.layer(WASM_TYPE) is None:
        raise ManifestError(f"{where}: the package has no BPF object layer")


def check_total_size(manifest: Manifest, *, where: str = "manifest") -> None:
    """Refuse, before any download, a manifest whose config and layers together declare more
    than EBPM_MAX_PACKAGE_SIZE (or that declares a negative size)."""
    from ebpm.errors import TooLargeError
    from ebpm.limits import human_size, limits

    sizes = [manifest.config.size, *(layer.size for layer in manifest.layers)]
    if any(size < 0 for size in sizes):
        raise ManifestError(f"{where}: a descriptor declares a negative size")
    total, cap = sum(sizes), limits().package_size
    if total > cap:
        raise TooLargeError(
            f"{where}: declares {human_size(total)} of blobs, more than the {human_size(cap)} "
            "cap (EBPM_MAX_PACKAGE_SIZE)",
            hint="nothing was downloaded; raise EBPM_MAX_PACKAGE_SIZE if you expect it",
        )


def layer_bytes(
    manifest: Manifest, media_type: str, read: Callable[[Descriptor], bytes]
) -> bytes | None:
    desc = manifest.layer(media_type)
    return read(desc) if desc is not None else None
