"""How ebpm reaches registries: one frozen `RegistryAccess` (TLS, insecure hosts, CA bundle,
offline, mirrors), built once by the face from flags and environment, and the clients opened
with it.

Mirrors come from $EBPM_MIRRORS (`REGISTRY=MIRROR[,MIRROR]`, space-separated) and the
`[mirrors]` table of $EBPM_CONFIG/registries.toml (`"ghcr.io" = ["mirror.local:5000/ghcr"]`);
a registry with mirrors reads from them only while it is unreachable (ebpm.oci.mirror).
"""

from __future__ import annotations

import os

from ebpm.record import field, record

TYPE_CHECKING = False
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
    "MIRRORS_ENV",
    "configured_mirrors",
]

INSECURE_ENV = "EBPM_INSECURE_REGISTRIES"
CA_FILE_ENV = "EBPM_CA_FILE"
MIRRORS_ENV = "EBPM_MIRRORS"
REGISTRIES_FILE = "registries.toml"
MAX_URL_BYTES = 256 << 20  # get_url's default cap on a download

_clients: dict[tuple[str, bool, str, bool, tuple[str, ...]], Registry] = {}


def configured_mirrors() -> dict[str, tuple[str, ...]]:
    """{registry: mirrors} from $EBPM_CONFIG/registries.toml, then $EBPM_MIRRORS (which wins)."""
    from ebpm import config
    from ebpm.errors import UsageError

    out: dict[str, tuple[str, ...]] = {}
    path = os.path.join(config.config_dir(), REGISTRIES_FILE)
    if os.path.isfile(path):
        import tomllib

        try:
            with open(path, "rb") as fh:
                table = tomllib.load(fh).get("mirrors", {})
        except tomllib.TOMLDecodeError as err:
            raise UsageError(f"{path}: {err}") from err
        if not isinstance(table, dict) or not all(
                isinstance(v, list) and all(isinstance(m, str) for m in v)
                for v in table.values()):
            raise UsageError(f"{path}: [mirrors] maps registries to lists of mirrors",
                             hint='"ghcr.io" = ["mirror.local:5000"]')
        out.update({k: tuple(m.rstrip("/") for m in v) for k, v in table.items()})
    text = os.environ.get(MIRRORS_ENV, "")
    if text.strip():
        out.update(_parse_mirrors(text))
    return out


def _parse_mirrors(text: str) -> dict[str, tuple[str, ...]]:
    """`REGISTRY=MIRROR[,MIRROR…]` entries separated by spaces or semicolons."""
    from ebpm.errors import UsageError

    out: dict[str, tuple[str, ...]] = {}
    for item in text.replace(";", " ").split():
        registry, sep, mirrors = item.partition("=")
        if not sep or not registry or not mirrors:
            raise UsageError(f"{MIRRORS_ENV}: {item!r} is not REGISTRY=MIRROR[,MIRROR]",
                             hint=f"e.g. {MIRRORS_ENV}='ghcr.io=mirror.local:5000'")
        out[registry] = tuple(m.strip().rstrip("/") for m in mirrors.split(",") if m.strip())
    return out


def insecure_registries() -> frozenset[str]:
    """Hosts listed in $EBPM_INSECURE_REGISTRIES (comma-separated) may use plain http."""
    return frozenset(h.strip() for h in os.environ.get(INSECURE_ENV, "").split(",") if h.strip())


@record
class RegistryAccess:
    """What a command may do on the network, decided once (flags over environment).

    `insecure`: every registry this command names may use plain http / unverified TLS
    (--insecure); `insecure_hosts`: those that may always ($EBPM_INSECURE_REGISTRIES);
    `ca_bundle`: the CA file to trust (--ca-file, $EBPM_CA_FILE); `offline`: no network call;
    `mirrors`: (registry, (mirror, …)) read from while that registry is unreachable.
    """

    insecure: bool = False
    insecure_hosts: frozenset[str] = field(default_factory=frozenset)
    ca_bundle: str | None = None
    offline: bool = False
    mirrors: tuple[tuple[str, tuple[str, ...]], ...] = ()

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
            mirrors=tuple(sorted(configured_mirrors().items())),
        )

    def insecure_for(self, host: str) -> bool:
        return self.insecure or host in self.insecure_hosts

    def client(self, host: str) -> Registry:
        """The registry client for `host` under these settings (one per process, reused)."""
        from ebpm.oci.remote import Registry

        insecure = self.insecure_for(host)
        mirrors = dict(self.mirrors).get(host, ())
        key = (host, insecure, self.ca_bundle or "", self.offline, mirrors)
        client = _clients.get(key)
        if client is None:
            if mirrors:
                from ebpm.oci.mirror import MirroredRegistry

                served = [(self.client(m.split("/", 1)[0]), m.partition("/")[2])
                          for m in mirrors]
                client = MirroredRegistry(host, served, insecure=insecure,
                                          ca_bundle=self.ca_bundle, offline=self.offline)
            else:
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
