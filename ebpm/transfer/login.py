"""`ebpm login` and `ebpm logout`: prove credentials against a registry and store or forget them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import UsageError

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["LoginResult", "LogoutResult", "registry_host", "login", "logout"]


@dataclass(frozen=True)
class LoginResult:
    host: str
    path: Path  # where the credentials were saved (mode 0600)


@dataclass(frozen=True)
class LogoutResult:
    host: str
    removed: bool  # False: there were no stored credentials


def registry_host(registry: str) -> str:
    """The host key credentials are stored under (`https://ghcr.io/` -> `ghcr.io`); refuses
    a user:password inside the address, a bad port, and what is no host."""
    from ebpm.oci.reference import parse_registry

    return parse_registry(registry)


def login(registry: str, username: str, password: str, *,
          access: RegistryAccess | None = None) -> LoginResult:
    """Check `username`/`password` against `registry` (through its token server if it has one),
    then store them in ebpm's auth.json. Nothing is stored when the registry refuses them."""
    from ebpm.access import RegistryAccess
    from ebpm.errors import AuthError
    from ebpm.oci.auth import Credentials, store_credentials
    from ebpm.oci.remote import check_credentials

    host = registry_host(registry)
    if not username:
        raise UsageError("login: no username", hint="pass -u USER")
    if not password:
        raise UsageError("login: empty password")
    access = access or RegistryAccess.from_env()
    credentials = Credentials(username, password, source="ebpm login")
    try:
        check_credentials(host, credentials, insecure=access.insecure_for(host),
                          ca_bundle=access.ca_bundle)
    except AuthError as err:  # its hint says "log in again", which is what just failed
        raise AuthError(err.message,
                        hint="check the user name and password (or token); nothing was stored",
                        status=err.status, code=err.code) from err
    return LoginResult(host, store_credentials(host, credentials))


def logout(registry: str) -> LogoutResult:
    """Forget the credentials `login` stored for `registry`."""
    from ebpm.oci.auth import remove_credentials

    host = registry_host(registry)
    return LogoutResult(host, remove_credentials(host))
