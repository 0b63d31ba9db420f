"""`ebpm cache`: where the store is, and pruning it."""

from __future__ import annotations

import click

__all__ = ["cache"]


@click.group()
def cache() -> None:
    """Manage the local store ($EBPM_HOME, default ~/.cache/ebpm)."""


@cache.command()
def prune() -> None:
    """Delete blobs that no stored package uses."""
    from ebpm.cli.output import human_size
    from ebpm.transfer.store import prune as prune_store

    files, size = prune_store()
    click.echo(f"pruned {files} blobs ({human_size(size)})")


@cache.command()
def dir() -> None:  # noqa: A001 - the command's name
    """Print the store's path."""
    from ebpm import config

    click.echo(str(config.store_home()))
