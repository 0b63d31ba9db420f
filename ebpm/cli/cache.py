"""`ebpm cache`: where the store is, what it names, and pruning it."""

from __future__ import annotations

import click

from ebpm.cli.options import json_option

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """Manage the local store ($EBPM_HOME, default ~/.cache/ebpm)."""


@cache.command("ls")
@json_option
def ls(as_json: bool) -> None:
    """List what the store names: packages, git builds, url files.

    Also says how much `ebpm cache prune` would free: the blobs nothing names."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import human_size, table
    from ebpm.transfer.store import list_store

    items, files, size = list_store()
    if as_json:
        echo_json({"items": [i.to_dict() for i in items],
                   "unreferenced": {"blobs": files, "size": size}})
        return
    if items:
        table(["KIND", "NAME", "SOURCE", "SIZE"],
              [(i.kind, _short(i.name), i.source, human_size(i.size)) for i in items])
    else:
        click.echo("nothing named in the store", err=True)
    click.echo(f"unreferenced: {files} blobs ({human_size(size)}); `ebpm cache prune` "
               "removes them (those written or used in the last hour with --now)", err=True)


def _short(name: str) -> str:
    """A name whose tag is a commit id or a sha256 (git builds, url files), its tag cut to 12."""
    head, colon, tag = name.rpartition(":")
    hexed = len(tag) > 12 and all(c in "0123456789abcdef" for c in tag)
    return f"{head}:{tag[:12]}…" if colon and hexed and "/" in head else name


@cache.command()
@click.option("--now", is_flag=True,
              help="Also delete unnamed blobs written or used in the last hour.")
def prune(now: bool) -> None:
    """Delete blobs that nothing in the store names.

    Packages, their signatures, git builds and url files are named (see `ebpm cache ls`).
    Unnamed blobs written or used in the last hour stay unless --now: an install or pull
    running meanwhile may be about to name them."""
    from ebpm.cli.output import human_size
    from ebpm.transfer.store import PRUNE_GRACE
    from ebpm.transfer.store import prune as prune_store

    files, size, kept = prune_store(grace=0.0 if now else PRUNE_GRACE)
    click.echo(f"pruned {files} blobs ({human_size(size)})")
    if kept:
        click.echo(f"kept {kept} unnamed blobs written or used in the last hour (an install may "
                   "still name them); `ebpm cache prune --now` deletes them too", err=True)


@cache.command()
def dir() -> None:  # noqa: A001 - the command's name
    """Print the store's path."""
    from ebpm import config

    click.echo(str(config.store_home()))
