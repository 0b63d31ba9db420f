"""`ebpm inspect` and `ebpm tags`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ebpm.cli.options import json_option, registry_options

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["inspect", "tags"]


@click.command()
@click.argument("ref")
@click.option("--local", is_flag=True, help="Read from the local store, not the registry.")
@registry_options
@json_option
def inspect(ref: str, local: bool, access: RegistryAccess, as_json: bool) -> None:
    """Show REF's manifest, package metadata and layers."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import human_size, table
    from ebpm.transfer.inspect import inspect as inspect_package

    if ref.startswith(("./", "../", "/")) or ref.endswith((".o", ".wasm", ".json", ".toml")):
        from pathlib import Path

        if Path(ref).exists():
            from ebpm.errors import UsageError

            raise UsageError(f"inspect {ref}: a file or directory here; inspect reads a "
                             "registry or store reference",
                             hint="`ebpm build DIR --json` shows a package directory's metadata; "
                                  "`ebpm run PATH -- -h` a program's flags")
    info = inspect_package(ref, local=local, access=access)
    if as_json:
        echo_json(info.to_dict())
        return
    c = info.config
    click.echo(f"Reference:   {info.reference}")
    click.echo(f"Package:     {c.name} {c.version}" + (f" — {c.description}" if c.description
                                                        else ""))
    if c.license or c.authors:
        click.echo(f"License:     {c.license or '-'}   Authors: {', '.join(c.authors) or '-'}")
    click.echo(f"Signed:      {'yes' if info.signed else 'no'}   (source: {info.source})")
    created = info.manifest.annotations.get("org.opencontainers.image.created")
    if created:
        click.echo(f"Created:     {created}")
    if c.programs:
        click.echo("Programs:    " + ", ".join(f"{p.name} ({p.section})" for p in c.programs))
    if c.maps:
        click.echo("Maps:        " + ", ".join(f"{m.name} ({m.type})" for m in c.maps))
    if c.args:
        click.echo("Arguments:   " + ", ".join(f"--{a.flag}" for a in c.args))
    if c.dependencies:
        click.echo("Depends on:  " + ", ".join(f"{k} {v}" for k, v in c.dependencies.items()))
    if c.requirements.arch or c.requirements.kernel:
        click.echo("Requires:    " + _requirements(c.requirements.arch, c.requirements.kernel))
    click.echo("")
    rows = [("config", info.manifest.config.media_type, human_size(info.manifest.config.size),
             info.manifest.config.digest[:19])]
    rows += [(layer.title, layer.media_type, human_size(layer.size), layer.digest[:19])
             for layer in info.manifest.layers]
    table(["FILE", "MEDIA TYPE", "SIZE", "DIGEST"], rows)


@click.command()
@click.argument("repo")
@registry_options
@json_option
def tags(repo: str, access: RegistryAccess, as_json: bool) -> None:
    """List REPO's tags, versions in semver order."""
    from ebpm.cli.app import echo_json
    from ebpm.transfer.inspect import tags as list_tags

    found = list_tags(repo, access=access)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo(f"no tags in {repo}", err=True)
    for tag in found:
        click.echo(tag)


def _requirements(arch: tuple[str, ...], kernel: str) -> str:
    """`arm64 (not this machine: x86_64), Linux 5.8+`: what a run here checks first."""
    import os

    from ebpm.arches import runs_on

    parts = []
    if arch:
        machine = os.uname().machine
        parts.append(" or ".join(arch) + ("" if runs_on(arch, machine)
                                          else f" (not this machine: {machine})"))
    if kernel:
        parts.append(f"Linux {kernel}+")
    return ", ".join(parts)
