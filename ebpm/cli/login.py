"""`ebpm login` and `ebpm logout`: store or forget registry credentials (mode 0600)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ebpm.cli.options import registry_options

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["login", "logout"]


@click.command()
@click.argument("registry")
@click.option("-u", "--username", help="User name (prompted for when interactive).")
@click.option(
    "-p", "--password",
    help="Password or token (visible to other users in the process list: prefer "
    "--password-stdin; prompted for when interactive).",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@registry_options
def login(
    registry: str, username: str | None, password: str | None, password_stdin: bool,
    access: RegistryAccess,
) -> None:
    """Check credentials against REGISTRY and store them for ebpm (in $EBPM_CONFIG/auth.json).

    Credentials are otherwise also read from $DOCKER_CONFIG/config.json (~/.docker).
    """
    from ebpm.errors import UsageError
    from ebpm.transfer.login import login as store_login
    from ebpm.transfer.login import registry_host

    registry_host(registry)  # a bad host is refused before any prompt
    interactive = sys.stdin.isatty()
    if password is not None and password_stdin:
        raise UsageError("login: give --password or --password-stdin, not both")
    if password is not None:  # as docker says it: others may read it in the process list
        click.echo("warning: --password on the command line is visible to other users "
                   "(`ps`) and kept in shell history; use --password-stdin", err=True)
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
    result = store_login(registry, username, password or "", access=access)
    click.echo(f"Login succeeded: credentials for {result.host} saved in {result.path}")


@click.command()
@click.argument("registry")
def logout(registry: str) -> None:
    """Forget the credentials `ebpm login` stored for REGISTRY."""
    from ebpm.transfer.login import logout as forget

    result = forget(registry)
    if result.removed:
        click.echo(f"Removed credentials for {result.host}")
    else:
        click.echo(f"Not logged in to {result.host}")
