"""The resolver's `Source` over the registry and the store: tag lists, manifests, configs."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ebpm.errors import DigestMismatchError, OfflineError

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.deps.git import GitRepo
    from ebpm.oci.layout import Store
    from ebpm.oci.model import Manifest
    from ebpm.oci.remote import Registry
    from ebpm.package import PackageConfig
    from ebpm.resolver.dependency import GitDependency
    from ebpm.resolver.source import GitPackage

__all__ = ["RegistrySource"]


class RegistrySource:
    """The resolver's `Source` over the registry and the store; offline, over the store only.

    Tag lists are cached in the store (so ranges resolve offline later); manifests are fetched
    once per version and config blobs once per digest.
    """

    def __init__(self, store: Store, *, access: RegistryAccess | None = None) -> None:
        from ebpm.access import RegistryAccess

        self.store = store
        self.access = access or RegistryAccess.from_env()
        self.offline = self.access.offline
        self._manifests: dict[tuple[str, str], tuple[str, Manifest]] = {}
        self._configs: dict[str, PackageConfig] = {}
        self._lock = threading.Lock()
        self._git_repos: dict[str, GitRepo] = {}

    def client(self, registry: str) -> Registry:
        return self.access.client(registry)

    def versions(self, package_id: str) -> list[str]:
        if self.offline:
            tags = self.store.get_tags(package_id)
            if tags is None:
                tags = [
                    e.tag for e in self.store.entries() if e.repository == package_id and e.tag
                ]
            if not tags:
                raise OfflineError(
                    f"{package_id}: no versions in the store (offline)",
                    hint="run `ebpm lock` or `ebpm install` once while online",
                )
            return tags
        registry, repository = package_id.split("/", 1)
        tags = self.client(registry).list_tags(repository)
        self.store.put_tags(package_id, tags)
        return tags

    def pin(self, package_id: str, version: str) -> tuple[str, Manifest]:
        """The manifest digest and manifest of `package_id` at `version` (fetched once)."""
        key = (package_id, version)
        known = self._manifests.get(key)
        if known is not None:
            return known
        from ebpm.oci.artifact import check_package_manifest
        from ebpm.oci.model import Manifest
        from ebpm.oci.reference import Reference
        from ebpm.versions import tag_from_version

        registry, repository = package_id.split("/", 1)
        tag = tag_from_version(version)
        where = f"{package_id}:{tag}"
        if self.offline:
            from ebpm.transfer.pull import find_cached

            desc = find_cached(self.store, Reference(registry, repository, tag))
            if desc is None:
                raise OfflineError(
                    f"{where}: not in the store (offline)",
                    hint="run `ebpm install` once while online",
                )
            digest = desc.digest
            _, manifest = self.store.read_manifest(digest, size=desc.size)
        else:
            data, _, digest = self.client(registry).get_manifest(repository, tag)
            manifest = Manifest.from_bytes(data, where=where)
        check_package_manifest(manifest, where=where)
        with self._lock:
            self._manifests[key] = (digest, manifest)
        return digest, manifest

    def config(self, package_id: str, version: str) -> PackageConfig:
        """The PackageConfig of `package_id` at `version` (config blobs cached by digest)."""
        from ebpm.package import PackageConfig

        _, manifest = self.pin(package_id, version)
        desc = manifest.config
        cached = self._configs.get(desc.digest)
        if cached is not None:
            return cached
        if desc.data is not None:  # embedded in the manifest, checked when it was parsed
            data = desc.data
        elif self.store.has_blob(desc.digest):
            data = self.store.read_blob(desc.digest, size=desc.size)
        elif self.offline:
            raise OfflineError(
                f"{package_id}@{version}: config blob {desc.digest} not in the store"
            )
        else:
            registry, repository = package_id.split("/", 1)
            data = self.client(registry).get_blob(repository, desc.digest, size=desc.size)
        config = PackageConfig.from_json(data)
        if config.version != version:
            raise DigestMismatchError(
                f"{package_id}:{version}: config says version {config.version}",
                hint="the tag points at another version's package; ask its publisher",
            )
        self._configs[desc.digest] = config
        return config

    def metadata(self, package_id: str, version: str) -> Mapping[str, Any]:
        return self.config(package_id, version).dependencies

    def content_digest(self, package_id: str, version: str) -> str:
        """sha256 of what `version` holds apart from its version: the config without `version`
        and the layer digests. Equal digests make two versions one package to the resolver."""
        import json

        from ebpm.canonical import canonical_json
        from ebpm.digests import sha256_digest

        _, manifest = self.pin(package_id, version)
        config = json.loads(self.config(package_id, version).to_json())
        config.pop("version", None)
        body = canonical_json({"config": config,
                               "layers": [d.digest for d in manifest.layers]})
        return sha256_digest(body)

    def git(self, dep: GitDependency, locked_commit: str) -> GitPackage:
        """A git dependency at its locked commit, or at the head of its ref (fetched into the
        store's copy of the repository; offline, from that copy)."""
        from ebpm.deps.git import describe

        return describe(self.store.root, dep, locked_commit, offline=self.offline,
                        repo=self.git_repo(dep.git))

    def git_repo(self, url: str) -> GitRepo:
        """The store's copy of the repository at `url`, one object per source (so a
        repository is fetched at most once per resolution)."""
        from ebpm.deps.git import GitRepo

        with self._lock:
            repo = self._git_repos.get(url)
            if repo is None:
                repo = self._git_repos[url] = GitRepo(self.store.root, url,
                                                      offline=self.offline)
        return repo

    def signature_digest(self, package_id: str, digest: str) -> str:
        """The digest of `digest`'s signature manifest: the legacy `sha256-<hex>.sig` one, else
        the first signature referrer's ('' when unsigned); from the store, else the registry."""
        from ebpm.trust import discovery

        found = discovery.stored(self.store, package_id, digest)
        if found.signed or self.offline:
            return found.first
        registry, repository = package_id.split("/", 1)
        return discovery.locate(self.client(registry), repository, digest).first
