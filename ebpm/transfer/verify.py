"""`ebpm verify REF`: a package's signatures checked against the trust policy."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ebpm.errors import NotFoundError, OfflineError, SignatureError
from ebpm.trust.verification import Verification, enforce

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["verify"]


def verify(ref: str, *, access: RegistryAccess | None = None, fresh: bool = False
           ) -> Verification:
    """`ebpm verify REF`: check a package's signatures against the policy, from the store when it
    holds the package (no network), else pulling it first. The package's bytes are always
    checked; its signatures are taken from the verification record while the policy and the
    signatures are unchanged, unless `fresh`."""
    from ebpm.access import RegistryAccess, parse_reference
    from ebpm.oci.layout import Store
    from ebpm.transfer.pull import find_cached, resolve_tag

    reference = parse_reference(ref)
    store = Store()
    access = access or RegistryAccess.from_env()
    resolved = reference
    if not reference.tag and not reference.digest:
        with contextlib.suppress(NotFoundError):
            resolved = resolve_tag(reference, store, True, None)
    desc = find_cached(store, resolved)
    if desc is None:
        if access.offline:
            raise OfflineError(f"{reference}: not in the store (offline)",
                               hint="pull it once while online, or `ebpm load` a saved archive")
        from ebpm.transfer.pull import pull

        # every signature at once: verify lists every signer (a pull stops at the legacy one)
        package = pull(reference, access=access, store=store, every_signature=True)
        verification = package.verification
        if not isinstance(verification, Verification):
            raise SignatureError(f"{reference}: the pull did not verify signatures")
        return verification
    from ebpm.trust.discovery import complete

    # a pull that stopped at the legacy signature: every signature now, to list every signer
    looked = complete(store, resolved, desc.digest, access)
    return enforce(store, resolved.with_digest(desc.digest), desc.digest, fresh=fresh,
                   check_content=True, partial=False if looked else None)


