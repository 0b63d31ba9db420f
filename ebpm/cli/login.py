"""`ebpm login` and `ebpm logout`: store or forget registry credentials (mode 0600)."""

from __future__ import annotations

import sys

import click

__all__ = ["login", "logout"]


def _host(registry: str) -> str:
    from ebpm.oci.auth import normalize_host

    host = normalize_host(registry)
    if not host:
        from ebpm.errors import UsageError

        raise UsageError(f"login: {registry!r} is no registry host", hint="e.g. ghcr.io")
    return host


@click.command()
@click.argument("registry")
@click.option("-u", "--username", help="User name (prompted for when interactive).")
@click.option(
    "-p", "--password",
    help="Password or token (visible to other users in the process list: prefer "
    "--password-stdin; prompted for when interactive).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure", is_flag=True, help="Allow plain http and unverified TLS.")
@click.option(
    "--ca-file", envvar="EBPM_CA_FILE", type=click.Path(exists=True, dir_okay=False),
    help="CA bundle to verify the registry's TLS certificate. [env: EBPM_CA_FILE]",
)
def login(
    registry: str, username: str | None, password: str | None, password_stdin: bool,
    insecure: bool, ca_file: str | None,
) -> None:
    """Check credentials against REGISTRY and store them for ebpm (in $EBPM_CONFIG/auth.json).

    Credentials are otherwise also read from $DOCKER_CONFIG/config.json (~/.docker).
    """
    from ebpm.errors import UsageError
    from ebpm.oci.auth import Credentials, store_credentials
    from ebpm.oci.remote import check_credentials

    host = _host(registry)
    interactive = sys.stdin.isatty()
    if password is not None and password_stdin:
        raise UsageError("login: give --password or --password-stdin, not both")
    if not username:
        if not interactive:
            raise UsageError("login: no username", hint="pass -u USER")
        username = click.prompt("Username", type=str)
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif password is None:
        if not interactive:
            raise UsageError("login: no password", hint="pipe it in with --password-stdin")
        password = click.prompt("Password", hide_input=True, type=str)
    if not password:
        raise UsageError("login: empty password")
    credentials = Credentials(username, password, source="ebpm login")
    check_credentials(host, credentials, insecure=insecure, ca_bundle=ca_file)
    path = store_credentials(host, credentials)
    click.echo(f"Login succeeded: credentials for {host} saved in {path}")


@click.command()
@click.argument("registry")
def logout(registry: str) -> None:
    """Forget the credentials `ebpm login` stored for REGISTRY."""
    from ebpm.oci.auth import remove_credentials

    host = _host(registry)
    if remove_credentials(host):
        click.echo(f"Removed credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")
