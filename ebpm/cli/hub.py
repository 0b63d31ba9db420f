"""`ebpm search` and `ebpm hub` (refresh, list, build, serve): the catalog of registries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ebpm.cli.options import json_option, registry_options

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["search", "hub"]

_EMPTY_HINT = "index a registry first: `ebpm hub refresh [HOST[/NAMESPACE/*]]`"


@click.command()
@click.argument("terms", nargs=-1, required=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show at most N packages.")
@json_option
def search(terms: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """Search the hub's index for TERMS (names, descriptions, READMEs, program types and attach
    points, e.g. `tcp` or `tracepoint:sched`). Works offline: `ebpm hub refresh` updates the
    index."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import table
    from ebpm.errors import NotFoundError
    from ebpm.hub.index import HubIndex
    from ebpm.hub.search import search as find

    index = HubIndex.load()
    if not index.repositories:
        raise NotFoundError("search: the hub index is empty", hint=_EMPTY_HINT)
    hits = find(index, " ".join(terms), limit=limit)
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo(f"no package matches {' '.join(terms)!r} "
                   f"({len(index.repositories)} repositories indexed)", err=True)
        return
    table(["PACKAGE", "VERSION", "SIGNED", "PROGRAMS", "DESCRIPTION"],
          [(h.repository, h.version, "yes" if h.signed else "no", ",".join(h.types) or "-",
            h.description) for h in hits])


@click.group()
def hub() -> None:
    """The catalog: index registries, search them, build or serve a web site."""


@hub.command()
@click.argument("sources", nargs=-1)
@registry_options
@json_option
def refresh(sources: tuple[str, ...], access: RegistryAccess, as_json: bool) -> None:
    """Index SOURCES (HOST, HOST/NAMESPACE/* or HOST/REPOSITORY; default: the sources indexed
    before, else $EBPM_REGISTRY). Only new digests are fetched."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import progress
    from ebpm.hub.crawl import update

    with progress() as reporter:
        index, result = update(sources, access=access, reporter=reporter)
    summary = {
        "sources": index.sources, "repositories": len(index.repositories),
        "versions": len(index.versions), "listed": result.listed, "fetched": result.fetched,
        "added": result.added, "removed": result.removed, "resigned": result.resigned,
        "skipped": result.skipped,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"indexed {len(index.repositories)} repositories, {len(index.versions)} versions "
               f"from {', '.join(index.sources)}: {len(result.added)} new, "
               f"{len(result.removed)} removed, {len(result.resigned)} signatures checked again")
    for line in result.skipped:
        click.echo(f"skipped {line}", err=True)


@hub.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the indexed packages (latest versions), from the index alone."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import human_size, table
    from ebpm.hub.index import HubIndex

    index = HubIndex.load()
    packages = list(index.packages())
    if as_json:
        echo_json([{"repository": p.repository, "version": p.config.version,
                    "digest": p.digest, "signature": p.signature.state,
                    "versions": len(index.versions_of(p.repository)), "size": p.size}
                   for p in packages])
        return
    if not packages:
        click.echo(f"the hub index is empty; {_EMPTY_HINT}", err=True)
        return
    table(["PACKAGE", "LATEST", "VERSIONS", "SIGNATURE", "SIZE"],
          [(p.repository, p.config.version, len(index.versions_of(p.repository)),
            p.signature.state, human_size(p.size)) for p in packages])
