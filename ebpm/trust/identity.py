"""Signed identities: does the repository a signature names fit the repository being verified?

Modelled on containers-policy.json's `signedIdentity`. A signature's claimed identity (cosign's
`docker-reference`, which containers/image tools write with a tag) is compared with the
reference being verified under one of three rules:

- `match-repository` (the default): the same registry and repository; a tag or digest in the
  signature is ignored, and equivalent spellings of one registry are the same registry: the
  loopback names (`localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`), Docker Hub's names, and
  the aliases the policy declares;
- `remap`: the reference's `prefix` is replaced by `signed_prefix` first (a mirror or copy of
  `ghcr.io/org/*` at `mirror.local/org/*` is verified as `ghcr.io/org/*`);
- `match-digest`: any repository (cosign's own behaviour): only the manifest digest counts.

The same spelling rules decide which trust rule's scope covers a repository
(`normalize_scope`): a `localhost:5000/**` rule covers `127.0.0.1:5000/x`. Pure: no I/O.
"""

from __future__ import annotations

from ebpm.oci.reference import is_loopback_address
from ebpm.record import record

__all__ = [
    "MATCH_REPOSITORY", "MATCH_DIGEST", "SIGNED_IDENTITIES", "Remap", "IdentityRule",
    "strip_tag", "normalize", "normalize_registry", "normalize_scope", "expected_identity",
    "identity_error",
]

MATCH_REPOSITORY = "match-repository"
MATCH_DIGEST = "match-digest"
SIGNED_IDENTITIES = (MATCH_REPOSITORY, MATCH_DIGEST)
_DOCKER_HUB = {"docker.io", "registry-1.docker.io", "index.docker.io"}


@record
class Remap:
    """Verify `prefix/...` as if it were `signed_prefix/...` (a mirror or a copy)."""

    prefix: str
    signed_prefix: str


@record
class IdentityRule:
    """How a trust rule matches signed identities, with the policy's registry aliases."""

    signed_identity: str = MATCH_REPOSITORY
    remap: Remap | None = None
    aliases: tuple[tuple[str, ...], ...] = ()


def strip_tag(reference: str) -> str:
    """`registry/repo[:tag][@digest]` without its tag and digest."""
    name = reference.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash and slash != -1:
        name = name[:colon]
    return name


def _loopback(host: str) -> bool:
    return host == "localhost" or is_loopback_address(host.strip("[]"))


def normalize_registry(registry: str, aliases: tuple[tuple[str, ...], ...] = ()) -> str:
    """One spelling per registry: lower case, a declared alias group's first name, Docker Hub's
    names as `index.docker.io`, every loopback name (`Localhost`, `127.x.y.z`, `[::1]`) as
    `localhost` with the same port."""
    registry = registry.lower()
    for group in aliases:
        if registry in (a.lower() for a in group):
            return group[0].lower()
    if registry in _DOCKER_HUB:
        return "index.docker.io"
    if registry.startswith("["):  # [::1]:5000
        host, _, rest = registry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = registry.rpartition(":") if registry.count(":") == 1 else (
            registry, "", "")
    if _loopback(host):
        return f"localhost:{port}" if port else "localhost"
    return registry


def normalize(name: str, aliases: tuple[tuple[str, ...], ...] = ()) -> str:
    """`registry/repository` (a tag or digest dropped) with the registry spelled canonically."""
    name = strip_tag(name)
    return _normalize_parts(name, aliases)


def _normalize_parts(name: str, aliases: tuple[tuple[str, ...], ...]) -> str:
    registry, slash, repository = name.partition("/")
    if not slash:
        return name
    registry = normalize_registry(registry, aliases)
    if registry == "index.docker.io" and "/" not in repository and "**" not in repository:
        repository = f"library/{repository}"
    return f"{registry}/{repository}"


def normalize_scope(scope: str, aliases: tuple[tuple[str, ...], ...] = ()) -> str:
    """A trust rule's scope glob with its registry spelled as `normalize` spells a repository's
    (only a literal registry part: `*:5000/**` stays as written)."""
    registry = scope.partition("/")[0]
    if any(c in registry for c in "*?"):
        return scope
    return _normalize_parts(scope, aliases)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix.rstrip("/") + "/")


def expected_identity(repository: str, rule: IdentityRule) -> str | None:
    """The identity a signature must claim for `repository` (registry/repository), normalized;
    None when any identity is accepted (match-digest)."""
    if rule.signed_identity == MATCH_DIGEST:
        return None
    name = normalize(repository, rule.aliases)
    if rule.remap is not None:
        prefix = normalize(rule.remap.prefix, rule.aliases)
        if _under(name, prefix):
            signed = normalize(rule.remap.signed_prefix, rule.aliases)
            return signed.rstrip("/") + name[len(prefix.rstrip("/")):]
    return name


def identity_error(claimed: str, repository: str, rule: IdentityRule) -> str | None:
    """None when a signature claiming `claimed` counts for `repository`; else why not."""
    expected = expected_identity(repository, rule)
    if expected is None or normalize(claimed, rule.aliases) == expected:
        return None
    how = "after the rule's remap" if rule.remap is not None and expected != normalize(
        repository, rule.aliases) else "by repository"
    return (f"signed for another repository: the signature claims {claimed}, the policy "
            f"expects {expected} ({how}); a copy or mirror needs a remap rule, or "
            "signed_identity = \"match-digest\"")
