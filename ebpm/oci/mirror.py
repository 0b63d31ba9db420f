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

from ebpm.errors import NotFoundError, UnreachableError
from ebpm.oci.remote import Registry

__all__ = ["MirroredRegistry"]

T = TypeVar("T")


class MirroredRegistry(Registry):
    """`Registry` whose read methods fall back to mirrors when the registry is unreachable."""

    def __init__(self, host: str, mirrors: list[tuple[Registry, str]], **options: Any) -> None:
        super().__init__(host, **options)
        self.mirrors = mirrors  # (client, repository prefix)
        self.served_by: dict[str, str] = {}  # repository -> mirror host that answered

    def _read(self, repository: str, call: Callable[[Any, str], T], ref: str = "") -> T:
        """`call` on the registry, else on each mirror in turn (one that lacks the content or
        is unreachable too passes to the next). A failure names what was asked for on the
        registry (`ref`: `:tag` or `@digest`) and what each mirror answered."""
        try:
            return call(_Primary(self), repository)
        except UnreachableError as err:
            tried: list[str] = []
            missing: NotFoundError | None = None
            for client, prefix in self.mirrors:
                where = f"{client.host}/{prefix}" if prefix else client.host
                try:
                    result = call(client, f"{prefix}/{repository}" if prefix else repository)
                except UnreachableError:
                    tried.append(f"{where} unreachable")
                    continue
                except NotFoundError as absent:
                    missing = missing or absent
                    tried.append(f"{where} {absent.status or 404} {absent.code or 'not found'}")
                    continue
                self.served_by[repository] = client.host
                return result
            if missing is None:
                raise UnreachableError(
                    f"{err.message}; mirrors unreachable too: "
                    + ", ".join(c.host for c, _ in self.mirrors),
                    hint=err.hint,
                ) from err
            raise NotFoundError(
                f"{self.host}/{repository}{ref}: {self.host} unreachable, and not on its "
                f"mirror{'s' if len(tried) > 1 else ''} ({'; '.join(tried)})",
                hint=f"the mirror has not synced it: copy it there from {self.host}, or retry "
                f"when {self.host} is reachable",
                status=missing.status, code=missing.code,
            ) from missing

    def get_manifest(self, repository: str, reference: str, **kw: Any) -> tuple[bytes, str, str]:
        return self._read(repository, lambda c, r: c.get_manifest(r, reference, **kw),
                          _at(reference))

    def head_manifest(self, repository: str, reference: str) -> Any:
        return self._read(repository, lambda c, r: c.head_manifest(r, reference), _at(reference))

    def blob_exists(self, repository: str, digest: str) -> bool:
        return self._read(repository, lambda c, r: c.blob_exists(r, digest), f"@{digest}")

    def get_blob(self, repository: str, digest: str, **kw: Any) -> bytes:
        return self._read(repository, lambda c, r: c.get_blob(r, digest, **kw), f"@{digest}")

    def fetch_blob(self, repository: str, digest: str, *args: Any, **kw: Any) -> Any:
        return self._read(repository, lambda c, r: c.fetch_blob(r, digest, *args, **kw),
                          f"@{digest}")

    def referrers_api(self, repository: str, digest: str) -> Any:
        return self._read(repository, lambda c, r: c.referrers_api(r, digest), f"@{digest}")

    def referrers(self, repository: str, digest: str) -> Any:
        return self._read(repository, lambda c, r: c.referrers(r, digest), f"@{digest}")

    def list_tags(self, repository: str) -> list[str]:
        return self._read(repository, lambda c, r: c.list_tags(r))


def _at(reference: str) -> str:
    return f"@{reference}" if ":" in reference else f":{reference}"


class _Primary:
    """The registry's own (unmirrored) read methods, called on the mirrored client."""

    def __init__(self, client: MirroredRegistry) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(Registry, name)
        return lambda *args, **kw: method(self._client, *args, **kw)

