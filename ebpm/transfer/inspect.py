"""Describe a package (manifest, config, layers, signatures) from the registry or the store."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ebpm.errors import NotFoundError, OfflineError
from ebpm.oci.model import Manifest
from ebpm.oci.reference import Reference
from ebpm.package import PackageConfig

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["Inspection", "inspect", "tags"]


@dataclass(frozen=True)
class Inspection:
    reference: Reference
    digest: str
    manifest: Manifest
    manifest_bytes: bytes
    config: PackageConfig
    signed: bool  # a signature manifest exists for this digest
    source: str  # "registry" or "store"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "digest": self.digest,
            "source": self.source,
            "signed": self.signed,
            "manifest": json.loads(self.manifest_bytes),
            "config": self.config.to_dict(),
        }


def inspect(ref: str, *, local: bool = False,
            access: RegistryAccess | None = None) -> Inspection:
    """Read REF's manifest and config without storing anything (`local`: from the store)."""
    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.oci.layout import Store
    from ebpm.transfer.pull import find_cached, package_config, resolve_tag, signature_tag

    reference = parse_reference(ref)
    store = Store()
    access = access or RegistryAccess.from_env()
    if local or access.offline:
        reference = resolve_tag(reference, store, True, None)
        desc = find_cached(store, reference)
        if desc is None:
            raise (OfflineError if access.offline else NotFoundError)(
                f"{reference}: not in the store", hint=f"`ebpm pull {ref}` first"
            )
        data, manifest = store.read_manifest(desc.digest, size=desc.size)
        config = package_config(reference, manifest,
                                lambda d: store.read_blob(d.digest, size=d.size))
        from ebpm.trust.discovery import store_names

        signed = any(store.resolve(n) is not None
                     for n in store_names(reference.name, desc.digest))
        return Inspection(reference.with_digest(desc.digest), desc.digest, manifest, data,
                          config, signed, "store")

    client = access.client(reference.registry)
    reference = resolve_tag(reference, store, False, client)
    data, _, digest = client.get_manifest(reference.repository, reference.identifier)
    manifest = Manifest.from_bytes(data, where=str(reference))
    config = package_config(
        reference, manifest,
        lambda d: client.get_blob(reference.repository, d.digest, size=d.size))
    signed = client.head_manifest(reference.repository, signature_tag(digest)) is not None
    if not signed:  # an OCI 1.1 signature referrer
        from ebpm.oci.referrers import is_signature_referrer

        signed = any(is_signature_referrer(d)
                     for d in client.referrers(reference.repository, digest))
    return Inspection(reference.with_digest(digest), digest, manifest, data, config, signed,
                      "registry")


def tags(repo: str, *, access: RegistryAccess | None = None) -> list[str]:
    """The repository's tags: versions in semver order, then other tags alphabetically.
    Signature, attestation, SBOM and referrers-index tags (sha256-<hex>[.sig|.att|.sbom]) are
    left out. Offline, the cached list is used."""
    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.oci.layout import Store
    from ebpm.oci.reference import is_registry_address
    from ebpm.versions import is_version_tag, sorted_versions

    if is_registry_address(repo) or ("/" not in repo and repo.rpartition(":")[2].isdigit()):
        from ebpm.errors import UsageError  # HOST:PORT, not REPOSITORY:TAG

        raise UsageError(
            f"tags {repo}: {repo} is a registry, not a repository",
            hint=f"`ebpm hub refresh {repo}` then `ebpm hub list` shows its repositories; "
                 f"`ebpm tags {repo}/REPOSITORY` the tags of one",
        )
    reference = parse_reference(repo)
    store = Store()
    access = access or RegistryAccess.from_env()
    if access.offline:
        found = store.get_tags(reference.name)
        if found is None:
            raise OfflineError(f"{reference.name}: no cached tag list",
                               hint="run `ebpm tags` once online")
    else:
        client = access.client(reference.registry)
        found = client.list_tags(reference.repository)
        store.put_tags(reference.name, found)
    from ebpm.oci.referrers import is_auxiliary_tag

    found = [t for t in found if not is_auxiliary_tag(t)]
    versions = sorted_versions(found)
    others = sorted(t for t in found if not is_version_tag(t))
    return versions + others
