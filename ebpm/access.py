"""How ebpm reaches registries: one frozen `RegistryAccess` (TLS, insecure hosts, CA bundle,
offline), built once by the face from flags and environment, and the clients opened with it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ebpm.oci.reference import Reference
    from ebpm.oci.remote import Registry

__all__ = [
    "RegistryAccess",
    "registry_for",
    "parse_reference",
    "insecure_registries",
    "get_url",
    "INSECURE_ENV",
    "CA_FILE_ENV",
    "MAX_URL_BYTES",
]

INSECURE_ENV = "EBPM_INSECURE_REGISTRIES"
CA_FILE_ENV = "EBPM_CA_FILE"
MAX_URL_BYTES = 256 << 20  # get_url's default cap on a download

_clients: dict[tuple[str, bool, str, bool], Registry] = {}


def insecure_registries() -> frozenset[str]:
    """Hosts listed in $EBPM_INSECURE_REGISTRIES (comma-separated) may use plain http."""
    return frozenset(h.strip() for h in os.environ.get(INSECURE_ENV, "").split(",") if h.strip())


@dataclass(frozen=True)
class RegistryAccess:
    """What a command may do on the network, decided once (flags over environment).

    `insecure`: every registry this command names may use plain http / unverified TLS
    (--insecure); `insecure_hosts`: those that may always ($EBPM_INSECURE_REGISTRIES);
    `ca_bundle`: the CA file to trust (--ca-file, $EBPM_CA_FILE); `offline`: no network call.
    """

    insecure: bool = False
    insecure_hosts: frozenset[str] = field(default_factory=frozenset)
    ca_bundle: str | None = None
    offline: bool = False

    @classmethod
    def from_env(cls, *, insecure: bool = False, ca_file: str | None = None,
                 offline: bool = False) -> RegistryAccess:
        """Flags given by the caller, completed from the environment."""
        from ebpm import config

        return cls(
            insecure=insecure,
            insecure_hosts=insecure_registries(),
            ca_bundle=ca_file or os.environ.get(CA_FILE_ENV) or None,
            offline=offline or config.offline(),
        )

    def insecure_for(self, host: str) -> bool:
        return self.insecure or host in self.insecure_hosts

    def client(self, host: str) -> Registry:
        """The registry client for `host` under these settings (one per process, reused)."""
        from ebpm.oci.remote import Registry

        insecure = self.insecure_for(host)
        key = (host, insecure, self.ca_bundle or "", self.offline)
        client = _clients.get(key)
        if client is None:
            client = Registry(host, insecure=insecure, ca_bundle=self.ca_bundle,
                              offline=self.offline)
            _clients[key] = client
        return client


def parse_reference(text: str) -> Reference:
    from ebpm import config
    from ebpm.oci.reference import parse

    return parse(text, default_registry=config.default_registry())


def registry_for(host: str, access: RegistryAccess | None = None) -> Registry:
    """One client per (host, insecure, CA) per process, so connections are reused."""
    return (access or RegistryAccess.from_env()).client(host)


def get_url(url: str, access: RegistryAccess | None = None, *, max_bytes: int = MAX_URL_BYTES,
            context: str | None = None) -> bytes:
    """GET an http(s) URL into bytes through `oci.transport.download` under these settings
    (TLS, offline, retries, User-Agent, at most `max_bytes`)."""
    from urllib.parse import urlsplit

    from ebpm.oci.transport import download

    access = access or RegistryAccess.from_env()
    return download(url, max_bytes=max_bytes, insecure=access.insecure_for(urlsplit(url).netloc),
                    ca_bundle=access.ca_bundle, offline=access.offline, context=context)
