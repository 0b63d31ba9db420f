"""`ebpm key`, `ebpm sign`, `ebpm verify`, `ebpm trust`, `ebpm save` and `ebpm load`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ebpm.cli.options import OutputPath, json_option, registry_options

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["key", "sign", "verify", "trust", "save", "load"]

_PASSWORD_HELP = (
    "Read the key's password from the first line of stdin. [env: EBPM_KEY_PASSWORD]"
)
# the signing key's password, as `sign`, `push --sign` and `publish --sign` take it
password_stdin_option = click.option("--password-stdin", is_flag=True, help=_PASSWORD_HELP)


def key_password(from_stdin: bool) -> str | None:
    """The signing key's password: stdin's first line with --password-stdin, else None (the
    key's loader then reads EBPM_KEY_PASSWORD, and its hints name where it came from)."""
    import sys

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        return line or None
    return None


def _password(from_stdin: bool) -> str | None:
    """A new key's password (`key generate`): stdin's with --password-stdin, else
    EBPM_KEY_PASSWORD's."""
    import os

    if from_stdin:
        return key_password(True)
    return os.environ.get("EBPM_KEY_PASSWORD") or None


# -- key ----------------------------------------------------------------------------------------


@click.group()
def key() -> None:
    """Manage signing keys (ECDSA P-256) in $EBPM_CONFIG/keys (default ~/.config/ebpm/keys)."""


@key.command("generate")
@click.option("--name", default="default", show_default=True, help="Name of the key pair.")
@click.option("--password-stdin", is_flag=True, help="Encrypt the private key with a password "
              "read from stdin. [env: EBPM_KEY_PASSWORD]")
@click.option("--trust", "trust_scope", metavar="SCOPE",
              help="Also trust the new key for SCOPE (a registry/repository glob, e.g. "
              "'localhost:5000/**').")
@click.option("--force", is_flag=True, help="Replace an existing key pair of that name.")
@json_option
def key_generate(name: str, password_stdin: bool, trust_scope: str | None, force: bool,
                 as_json: bool) -> None:
    """Generate a signing key pair.

    NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (SPKI PEM)."""
    from ebpm.cli.app import echo_json
    from ebpm.trust.keys import generate

    password = _password(password_stdin)
    if password_stdin and password is None:  # `echo "$UNSET" | ...`: never a key left open
        from ebpm.errors import UsageError

        raise UsageError("key generate --password-stdin: stdin held no password",
                         hint="pipe one in (printf '%s\\n' \"$PW\" | ebpm key generate "
                              "--password-stdin), or leave the flag out for a key without one")
    info = generate(name, password=password, force=force)
    rule = None
    if trust_scope:
        from ebpm.trust.policy import add_trust

        rule = add_trust(trust_scope, info.public_path)
    if as_json:
        echo_json({"name": info.name, "key_id": info.key_id, "public": str(info.public_path),
                   "private": str(info.private_path), "encrypted": info.encrypted,
                   "trusted_for": trust_scope or ""})
        return
    click.echo(f"key {info.name}: {info.key_id}")
    click.echo(f"  private: {info.private_path}" + (" (encrypted)" if info.encrypted else ""))
    click.echo(f"  public:  {info.public_path}")
    if rule is not None:
        click.echo(f"  trusted for {rule.scope} ({rule.where})")
    else:
        click.echo(f"hint: trust it with `ebpm trust add 'REGISTRY/**' --key {info.name}`")


@key.command("list")
@json_option
def key_list(as_json: bool) -> None:
    """List the key pairs and public keys in the keys directory."""
    from ebpm.cli.app import echo_json
    from ebpm.trust.keys import keys_dir, list_keys

    keys = list_keys()
    if as_json:
        echo_json([{"name": k.name, "key_id": k.key_id, "public": str(k.public_path),
                    "private": str(k.private_path or ""), "encrypted": k.encrypted}
                   for k in keys])
        return
    if not keys:
        click.echo(f"no keys in {keys_dir()}; create one with `ebpm key generate`")
        return
    from ebpm.cli.output import table

    table(["NAME", "KEY ID", "PRIVATE", "PUBLIC"],
          [(k.name, k.key_id, "encrypted" if k.encrypted else "yes" if k.private_path else "no",
            k.public_path) for k in keys])


# -- sign / verify ------------------------------------------------------------------------------


@click.command()
@click.argument("ref")
@click.option("--key", "key_name", default="default", show_default=True,
              envvar="EBPM_SIGNING_KEY", metavar="KEY",
              help="Key name or private key PEM path. [env: EBPM_SIGNING_KEY]")
@password_stdin_option
@click.option("--referrers", is_flag=True,
              help="Store the signature as an OCI 1.1 referrer (cosign's "
              "--registry-referrers-mode=oci-1-1 form) instead of the sha256-<hex>.sig tag.")
@registry_options
@json_option
def sign(ref: str, key_name: str, password_stdin: bool, referrers: bool,
         access: RegistryAccess, as_json: bool) -> None:
    """Sign the package REF in its registry (cosign format; other signatures are kept)."""
    from ebpm.cli.app import echo_json
    from ebpm.trust.sign import racy_tag_warning, sign_reference

    result = sign_reference(ref, key_name, password=key_password(password_stdin),
                            access=access, referrers=referrers)
    warning = racy_tag_warning(ref, result)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        echo_json({"reference": str(result.reference), "signature": result.digest,
                   "key_id": result.key_id, "added": result.added})
        return
    state = "signed" if result.added else "already signed by this key"
    click.echo(f"{result.reference}: {state} ({result.key_id})")
    click.echo(f"  signature {'referrer' if referrers else 'manifest'} {result.digest}")


@click.command()
@click.argument("ref")
@click.option("--fresh", is_flag=True, help="Check the signatures again even when a "
              "verification record of the same policy and signatures exists.")
@registry_options
@json_option
def verify(ref: str, fresh: bool, access: RegistryAccess, as_json: bool) -> None:
    """Verify REF's signatures against the trust policy and print who signed what.

    Works from the local store ($EBPM_HOME) with no network when it holds REF; otherwise
    pulls it first (unless --offline / EBPM_OFFLINE=1). The package's bytes are checked every
    time; its signatures are checked again when the policy or the signatures changed (or with
    --fresh), else taken from the verification record.
    """
    from ebpm.cli.app import echo_json
    from ebpm.transfer.verify import verify as verify_package
    from ebpm.trust.verification import Refused

    try:
        result = verify_package(ref, access=access, fresh=fresh)
    except Refused as err:
        if as_json:  # the verdict is verify's result, a refusal too (then the error, exit 1)
            echo_json(err.verification.to_dict())
        raise
    if as_json:
        echo_json(result.to_dict())
        return
    head = f"{result.repository}@{result.digest}"
    if result.verified:
        click.echo(f"{head}: verified")
    else:
        click.echo(f"{head}: not verified ({result.status}; policy rule {result.rule})")
    for s in result.signers:
        by = "issuer" if s.kind == "keyless" else "key"
        click.echo(f"  signed by {s.key_id} ({by} {s.key_source}) for {s.docker_reference}")
    for reason in result.rejected:
        click.echo(f"  ignored: {reason}")
    click.echo(f"  policy {result.policy[:19]}  rule {result.rule}")
    if result.partial:
        click.echo("  (from the legacy .sig signature alone: OCI 1.1 referrers were not looked "
                   "up; verify online to list every signer)")
    if result.cached:
        click.echo("  (from the verification record: policy and signatures unchanged; "
                   "--fresh checks them again)")


# -- trust --------------------------------------------------------------------------------------


@click.group()
def trust() -> None:
    """Edit the trust policy: $EBPM_CONFIG/policy.toml (and read $EBPM_SYSTEM_CONFIG/policy.toml,
    default /etc/ebpm/policy.toml)."""


@trust.command("add")
@click.argument("scope")
@click.option("--key", "key_name", metavar="KEY",
              help="Key name (in the keys directory) or public key PEM path.")
@click.option("--optional", is_flag=True,
              help="Accept unsigned packages in SCOPE (signatures still checked when present).")
def trust_add(scope: str, key_name: str | None, optional: bool) -> None:
    """Trust KEY to sign packages in SCOPE.

    SCOPE is a registry/repository glob ('*' within a path segment, '**' across), e.g.
    'localhost:5000/**' or 'ghcr.io/acme/tools/*'."""
    from ebpm.trust.policy import trust_key

    rule = trust_key(scope, key_name, require=not optional)
    keys = ", ".join(k.key_id[:19] for k in rule.keys) or "no key"
    need = "signature required" if rule.require else "signature optional"
    click.echo(f"trust {rule.scope}: {keys}; {need} ({rule.where})")


@trust.command("list")
@json_option
def trust_list(as_json: bool) -> None:
    """List the policy's rules (system file first), with their keys."""
    from ebpm.cli.app import echo_json
    from ebpm.trust.policy import load_policy, system_policy_path, user_policy_path

    policy = load_policy()
    if as_json:
        echo_json({"fingerprint": policy.fingerprint, "files": [str(f) for f in policy.files],
                   "aliases": [list(a) for a in policy.aliases],
                   "rules": [{"scope": r.scope, "require": r.require, "where": r.where,
                              "keys": [{"id": k.key_id, "source": k.source} for k in r.keys],
                              "signed_identity": r.signed_identity,
                              "remap": ({"prefix": r.remap.prefix,
                                         "signed_prefix": r.remap.signed_prefix}
                                        if r.remap else None),
                              "keyless": [k.__dict__ for k in r.keyless],
                              "trusted_root": str(r.trusted_root or ""),
                              "legacy_keyless": r.legacy_keyless}
                             for r in policy.rules]})
        return
    if not policy.rules:
        click.echo(f"no rules in {user_policy_path()} or {system_policy_path()}: "
                   "every package needs a signature, and no key is trusted")
        click.echo("hint: `ebpm key generate --trust 'localhost:5000/**'`")
        return
    from ebpm.cli.output import table

    rows = []
    for r in policy.rules:
        signers = [f"{k.key_id[:19]} {k.source}" for k in r.keys]
        signers += [f"keyless {k}" for k in r.keyless]
        if r.legacy_keyless:
            signers.append("keyless: cosign's legacy form accepted (no inclusion proof)")
        if r.remap is not None:
            signers.append(f"signed as {r.remap.signed_prefix} (remap of {r.remap.prefix})")
        elif r.signed_identity != "match-repository":
            signers.append(f"identity: {r.signed_identity}")
        for n, k in enumerate(signers or ["-"]):
            first = n == 0
            rows.append((r.scope if first else "", ("required" if r.require else "optional")
                         if first else "", k, r.where if first else ""))
    table(["SCOPE", "SIGNATURE", "KEYS", "FILE"], rows)
    for group in policy.aliases:
        click.echo(f"alias: {' = '.join(group)}")
    click.echo(f"policy fingerprint {policy.fingerprint}")


@trust.command("rm")
@click.argument("scope")
@click.option("--key", "key_name", metavar="KEY",
              help="Remove only this key (name or public key path) from SCOPE's rule.")
def trust_rm(scope: str, key_name: str | None) -> None:
    """Remove SCOPE's rule (or one of its keys).

    Only the user's policy is edited; the system's policy is left as it is."""
    from ebpm.trust.policy import untrust_key

    untrust_key(scope, key_name)
    click.echo(f"removed {scope}" + (f" key {key_name}" if key_name else ""))


# -- save / load --------------------------------------------------------------------------------


@click.command()
@click.argument("refs", nargs=-1)
@click.option("-o", "--output", required=True, type=OutputPath(dir_okay=False),
              help="The tar archive to write.")
@click.option("--locked", is_flag=True,
              help="Save exactly what ebpm.lock pins (instead of REFS): registry packages with "
              "their signatures, git builds and commits, url files.")
@click.option("-C", "--directory", type=click.Path(file_okay=False),
              help="With --locked: the project directory, used as given (default: the nearest "
              "directory holding ebpm.toml or ebpm.lock, from the current one upwards).")
@click.option("--allow-unsigned", is_flag=True,
              help="Save packages the trust policy cannot verify (loud; not recommended).")
def save(refs: tuple[str, ...], output: str, locked: bool, directory: str | None,
         allow_unsigned: bool) -> None:
    """Save packages REFS from the store, with their signatures, as one deterministic OCI-layout
    tarball for an air-gapped machine (`ebpm load` there).

    With --locked: everything the project's ebpm.lock pins, at its pinned digests: registry
    packages with their signatures, the builds of git commits with the commits themselves
    (git bundles) and the files of url dependencies (path dependencies travel with the
    project). On the other machine: `ebpm
    load`, then `ebpm install --frozen --offline`.
    """
    from pathlib import Path

    from ebpm.cli.app import ExitStatus, abort

    if allow_unsigned:
        click.echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    if locked == bool(refs):
        abort("save: name packages (REFS) or pass --locked, not both" if locked
              else "save: nothing to save: name packages (REFS) or pass --locked",
              hint="ebpm save --locked -o deps.tar, or ebpm save REF... -o out.tar",
              code=ExitStatus.USAGE)
    if locked:
        from ebpm.deps.project import project_root
        from ebpm.deps.save import save_locked

        result = save_locked(project_root(directory), output, allow_unsigned=allow_unsigned)
        names: list[str] = [*result.saved, *result.pinned]
        for path in result.paths:
            click.echo(f"not saved path {path}: a path package travels with the project's "
                       "files (the lock pins their digest; install builds it)", err=True)
    else:
        from ebpm.transfer.archive import save as save_packages

        names = save_packages(list(refs), Path(output), allow_unsigned=allow_unsigned)
    for name in names:
        click.echo(f"saved {name}")
    click.echo(f"wrote {output}")


@click.command()
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--allow-unsigned", is_flag=True,
              help="Load packages the trust policy cannot verify (loud; not recommended).")
@json_option
def load(archive: str, allow_unsigned: bool, as_json: bool) -> None:
    """Load an archive made by `ebpm save` into the store; every package is verified first."""
    from pathlib import Path

    from ebpm.cli.app import echo_json
    from ebpm.transfer.archive import load as load_packages

    if allow_unsigned:
        click.echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    loaded = load_packages(Path(archive), allow_unsigned=allow_unsigned)
    adopted: set[str] = set()
    if any(p.verification is None for p in loaded):
        from ebpm.deps.save import adopt_git_objects

        adopted = adopt_git_objects(loaded)
    if as_json:
        echo_json([{"name": p.name, "digest": p.digest, **p.verification.to_dict()}
                   if p.verification else
                   {"name": p.name, "digest": p.digest, "status": "pinned"} for p in loaded])
        return
    for p in loaded:
        if p.digest in adopted:
            click.echo(f"loaded {p.name}  {p.digest}  into the store's copy of the repository")
            continue
        if p.verification is None:
            click.echo(f"loaded {p.name}  {p.digest}  pinned (unnamed until an ebpm.lock "
                       "names this digest)")
            continue
        who = ", ".join(s.key_id[:19] for s in p.verification.signers)
        click.echo(f"loaded {p.name}  {p.digest}  {p.verification.status}"
                   + (f" ({who})" if who else ""))
