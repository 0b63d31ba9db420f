"""`ebpm registry up|down|status`: a local registry for development."""

from __future__ import annotations

import click

from ebpm.cli.options import json_option

__all__ = ["registry"]


@click.group()
def registry() -> None:
    """Run a local OCI registry (Debian's docker-registry, or registry:2 through Docker)."""


@registry.command()
@click.option("--port", type=click.IntRange(1, 65535),
              help="Port on 127.0.0.1. [default: the port of a loopback $EBPM_REGISTRY, or 5000]")
@click.option("--notify", metavar="URL", default="",
              help="Post push and delete events to URL (an `ebpm hub serve`'s /-/events), "
              "with $EBPM_HUB_SECRET as bearer token.")
@click.option("--notify-secret", envvar="EBPM_HUB_SECRET", default="", hidden=True)
def up(port: int | None, notify: str, notify_secret: str) -> None:
    """Start the local registry.

    On 127.0.0.1, its data kept in $EBPM_DATA/registry (default ~/.local/share/ebpm/registry).
    Another port asked for while one runs, or a port another server holds, is an error."""
    from ebpm.dev.registry import default_port, short_names_elsewhere
    from ebpm.dev.registry import up as start

    s = start(port=port or default_port(), notify=notify, notify_secret=notify_secret)
    click.echo(f"registry {'running' if s.started else 'already running'} on {s.address} "
               f"({s.kind}, data: {s.data})" + (f", notifying {notify}" if notify else ""))
    elsewhere = short_names_elsewhere(s.address)
    if elsewhere:
        click.echo(f"note: short names (tools/NAME) still resolve against {elsewhere}; "
                   f"export EBPM_REGISTRY=localhost:{s.address.rpartition(':')[2]} to use "
                   "this registry", err=True)


@registry.command()
def down() -> None:
    """Stop the local registry."""
    from ebpm.dev.registry import down as stop

    click.echo("registry stopped" if stop() else "no registry was running")


@registry.command()
@json_option
def status(as_json: bool) -> None:
    """Say whether the local registry runs, and where."""
    from dataclasses import asdict

    from ebpm.cli.app import echo_json
    from ebpm.dev.registry import status as get_status

    s = get_status()
    if as_json:
        echo_json({k: v for k, v in asdict(s).items() if k != "started"})
    elif s.running:
        click.echo(f"running on {s.address} ({s.kind}, pid {s.pid or '-'}, data: {s.data})")
    else:
        click.echo("not running")
    if not s.running:  # the same answer for scripts with or without --json
        raise SystemExit(3)
