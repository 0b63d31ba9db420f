"""`ebpm list` and `ebpm rm`: the packages in the local store."""

from __future__ import annotations

import click

from ebpm.cli.options import json_option

__all__ = ["list_", "rm"]


@click.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the packages in the local store ($EBPM_HOME)."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import human_size, table
    from ebpm.transfer.store import list_packages

    packages = list_packages()
    if as_json:
        # the keys are the table's columns (REFERENCE is registry/repository:tag)
        echo_json([{"reference": p.name, "package": p.package, "version": p.version,
                    "size": p.size, "signed": p.signed, "digest": p.digest} for p in packages])
        return
    if not packages:
        click.echo("no packages in the store", err=True)
        return
    table(["REFERENCE", "PACKAGE", "VERSION", "SIZE", "SIGNED", "DIGEST"],
          [(p.name, p.package, p.version, human_size(p.size), "yes" if p.signed else "no",
            p.digest[:19]) for p in packages])


@click.command()
@click.argument("refs", nargs=-1, required=True)
def rm(refs: tuple[str, ...]) -> None:
    """Remove packages from the local store (and blobs nothing else uses)."""
    from ebpm.transfer.store import remove

    for ref in refs:
        for name in remove(ref):
            click.echo(f"removed {name}")
