"""A registry with mirrors: reads go to the registry itself and, only when it cannot be
reached, to its mirrors in order. Writes never go to a mirror.

A mirror can serve but cannot tamper: every manifest and blob read is verified against the
digest asked for (by the client, as for any registry), a package pulled by digest (a lock) must
have that digest, and signatures are checked against the trust policy of the *original*
reference (`registry/repository`), so content a mirror changed has no trusted signature.
A mirror is `host` or `host/prefix` (the repository is looked up under `prefix/`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ebpm.errors import UnreachableError
from ebpm.oci.remote import Registry

__all__ = ["MirroredRegistry"]

T = TypeVar("T")


class MirroredRegistry(Registry):
    """`Registry` whose read methods fall back to mirrors when the registry is unreachable."""

    def __init__(self, host: str, mirrors: list[tuple[Registry, str]], **options: Any) -> None:
        super().__init__(host, **options)
        self.mirrors = mirrors  # (client, repository prefix)
        self.served_by: dict[str, str] = {}  # repository -> mirror host that answered

    def _read(self, repository: str, call: Callable[[Any, str], T]) -> T:
        try:
            return call(_Primary(self), repository)
        except UnreachableError as err:
            failures = [err]
            for client, prefix in self.mirrors:
                try:
                    result = call(client, f"{prefix}/{repository}" if prefix else repository)
                except UnreachableError as again:
                    failures.append(again)
                    continue
                self.served_by[repository] = client.host
                return result
            raise UnreachableError(
                f"{err.message}; mirrors unreachable too: "
                + ", ".join(c.host for c, _ in self.mirrors),
                hint=err.hint,
            ) from err

    def get_manifest(self, repository: str, reference: str, **kw: Any) -> tuple[bytes, str, str]:
        return self._read(repository, lambda c, r: c.get_manifest(r, reference, **kw))

    def head_manifest(self, repository: str, reference: str) -> Any:
        return self._read(repository, lambda c, r: c.head_manifest(r, reference))

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self._read(repository, lambda c, r: c.blob_exists(r, digest))

    def get_blob(self, repository: str, digest: str, **kw: Any) -> bytes:
        return self._read(repository, lambda c, r: c.get_blob(r, digest, **kw))

    def fetch_blob(self, repository: str, digest: str, *args: Any, **kw: Any) -> Any:
        return self._read(repository, lambda c, r: c.fetch_blob(r, digest, *args, **kw))

    def referrers_api(self, repository: str, digest: str) -> Any:
        return self._read(repository, lambda c, r: c.referrers_api(r, digest))

    def referrers(self, repository: str, digest: str) -> Any:
        return self._read(repository, lambda c, r: c.referrers(r, digest))

    def list_tags(self, repository: str) -> list[str]:
        return self._read(repository, lambda c, r: c.list_tags(r))


class _Primary:
    """The registry's own (unmirrored) read methods, called on the mirrored client."""

    def __init__(self, client: MirroredRegistry) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(Registry, name)
        return lambda *args, **kw: method(self._client, *args, **kw)

