"""Open registry clients for references, with the user's TLS and insecure settings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ebpm.oci.reference import Reference
    from ebpm.oci.remote import Registry

__all__ = ["registry_for", "parse_reference", "insecure_registries"]

_clients: dict[tuple[str, bool, str], Registry] = {}


def insecure_registries() -> set[str]:
    """Hosts listed in $EBPM_INSECURE_REGISTRIES (comma-separated) may use plain http."""
    return {h.strip() for h in os.environ.get("EBPM_INSECURE_REGISTRIES", "").split(",") if h}


def parse_reference(text: str) -> Reference:
    from ebpm import config
    from ebpm.oci.reference import parse

    return parse(text, default_registry=config.default_registry())


def registry_for(host: str, *, insecure: bool = False, ca_bundle: str | None = None) -> Registry:
    """One client per (host, insecure, CA) per process, so connections are reused."""
    from ebpm.oci.remote import Registry

    insecure = insecure or host in insecure_registries()
    ca = ca_bundle or os.environ.get("EBPM_CA_FILE") or ""
    key = (host, insecure, ca)
    client = _clients.get(key)
    if client is None:
        client = Registry(host, insecure=insecure, ca_bundle=ca or None)
        _clients[key] = client
    return client
