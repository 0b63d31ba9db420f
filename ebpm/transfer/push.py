"""Publish a package: pack it, upload its blobs, then put its manifest under its version tag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import OfflineError, TagExistsError, UnreachableError, UsageError
from ebpm.oci.model import MANIFEST_V1
from ebpm.oci.reference import Reference
from ebpm.progress import NULL_REPORTER, ProgressReporter
from ebpm.versions import is_version_tag, tag_from_version, version_from_tag

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

    from ebpm.access import RegistryAccess

__all__ = ["PushResult", "check_push", "push"]


@dataclass(frozen=True)
class PushResult:
    reference: Reference  # with the tag pushed and the manifest digest
    digest: str
    size: int
    uploaded: int  # blobs uploaded (the others were already there)
    unchanged: bool  # the tag already pointed at exactly this content
    signature: str = ""  # signature manifest digest, when signed


def check_push(
    ref: str | None,
    *,
    access: RegistryAccess | None = None,
    sign_key: str | EllipticCurvePrivateKey | None = None,
    key_password: str | None = None,
) -> EllipticCurvePrivateKey | None:
    """What a push checks before any work (a build, an upload): REF (None: not known yet) a
    valid reference to a tag, not a digest; a registry it may reach (not offline); and the
    signing key, loaded (its password too), so that a key that cannot sign never leaves a
    version published unsigned. Returns the key loaded (None without `sign_key`)."""
    from ebpm.access import RegistryAccess, parse_reference

    if ref is not None:
        reference = parse_reference(ref)
        if reference.digest:
            raise UsageError(f"{ref}: push to a tag, not a digest",
                             hint=f"give {reference.name} (the tag defaults to the package "
                                  "version) or a version tag")
    if (access or RegistryAccess.from_env()).offline:
        raise OfflineError(f"push{f' {ref}' if ref else ''}: offline mode, and a push needs "
                           "the registry",
                           hint="push without --offline (and with EBPM_OFFLINE unset)")
    if sign_key is None or not isinstance(sign_key, str):
        return sign_key
    from ebpm.trust.keys import load_private

    return load_private(sign_key, password=key_password)


def push(
    path: str | Path,
    ref: str,
    *,
    force: bool = False,
    access: RegistryAccess | None = None,
    sign_key: str | EllipticCurvePrivateKey | None = None,
    key_password: str | None = None,
    revision: str = "",
    reporter: ProgressReporter = NULL_REPORTER,
) -> PushResult:
    """Push the package at `path` to `ref` (`registry/repo[:tag]`; the tag defaults to the
    package version). A published version tag is never overwritten with different content
    unless `force`. `sign_key` (a key name or file, or the key `check_push` loaded) signs it:
    the key is loaded before anything is uploaded."""
    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.transfer.pack import pack_path

    key = check_push(ref, access=access, sign_key=sign_key, key_password=key_password)
    reference = parse_reference(ref)
    version = None
    if reference.tag and is_version_tag(reference.tag):
        version = version_from_tag(reference.tag)
    elif not reference.tag and Path(path).is_file():
        # a bare object (or module) carries no version: never publish it as 0.0.0 silently
        raise UsageError(f"push {path}: a bare {Path(path).suffix or 'file'} has no version; "
                         f"push it to a version tag",
                         hint=f"ebpm push {path} {ref}:1.0.0 (or build a package with ebpm.toml)")
    artifact = pack_path(path, version=version, revision=revision)
    package_version = artifact.manifest.annotations.get("org.opencontainers.image.version", "")
    if not reference.tag:
        reference = reference.with_tag(tag_from_version(package_version))
    elif is_version_tag(reference.tag) and version_from_tag(reference.tag) != package_version:
        raise UsageError(
            f"{ref}: tag {reference.tag} is not the package version {package_version}",
            hint="bump the version in ebpm.toml and build again, or push without a tag",
        )

    try:
        client = (access or RegistryAccess.from_env()).client(reference.registry)
        _check_dependencies(artifact.config.data, reference, path, access)
        existing = client.head_manifest(reference.repository, reference.tag)
        if existing is not None and existing.digest == artifact.digest:
            result = PushResult(reference.with_digest(artifact.digest), artifact.digest,
                                artifact.size, 0, True)
        else:
            if existing is not None and not force and is_version_tag(reference.tag):
                raise TagExistsError(
                    f"{reference}: version {reference.tag} is already published with different "
                    f"content ({existing.digest})",
                    hint="bump the version; or pass --force to overwrite a published version",
                )
            uploaded = 0
            for blob in artifact.blobs:
                label = blob.descriptor.title or "config"
                advance = reporter.task(label, blob.descriptor.size)
                if client.push_blob(reference.repository, blob.descriptor.digest, blob.data,
                                    progress=advance):
                    uploaded += 1
                reporter.done(label)
            client.put_manifest(reference.repository, reference.tag, artifact.manifest_bytes,
                                MANIFEST_V1)
            result = PushResult(reference.with_digest(artifact.digest), artifact.digest,
                                artifact.size, uploaded, False)

        if key is not None:
            from ebpm.trust.sign import sign

            signature = sign(reference, artifact.digest, key, registry=client)
            result = PushResult(result.reference, result.digest, result.size, result.uploaded,
                                result.unchanged, signature=signature.digest)
    except UnreachableError as err:  # (its hint's --offline cannot help a push)
        err.hint = ("check the registry's name and that it runs (`ebpm registry up` starts "
                    "a local one): a push needs it")
        raise
    return result


class _TagLists:
    """The resolver's view of published versions, from the registries' tag lists."""

    def __init__(self, access: RegistryAccess | None) -> None:
        from ebpm.access import RegistryAccess

        self.access = access or RegistryAccess.from_env()

    def versions(self, package_id: str) -> list[str]:
        registry, repository = package_id.split("/", 1)
        return self.access.client(registry).list_tags(repository)

    def metadata(self, package_id: str, version: str) -> dict[str, object]:
        return {}


def _check_dependencies(config_json: bytes, reference: Reference, path: str | Path,
                        access: RegistryAccess | None) -> None:
    """Refuse to publish a dependency table consumers could not resolve: path dependencies,
    bad ranges, url without sha256, packages missing from their registry. Short names mean
    the registry pushed to, as they will for consumers."""
    import json

    from ebpm.resolver.validate import check_publishable

    raw = json.loads(config_json).get("dependencies") or {}
    if raw:
        check_publishable(raw, registry=reference.registry, where=f"push {path}",
                          source=_TagLists(access))
