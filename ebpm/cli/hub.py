"""`ebpm search` and `ebpm hub` (refresh, list, build, serve): the catalog of registries."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ebpm.cli.options import OutputPath, json_option, registry_options

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.hub.crawl import RefreshResult

__all__ = ["search", "hub"]

_EMPTY_HINT = "index a registry first: `ebpm hub refresh [HOST[/NAMESPACE/*]]`"
_no_wait = click.option("--no-wait", is_flag=True,
                        help="Fail at once when another hub refresh or build is running "
                             "(default: wait for it, then go on from its index).")


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _warn_incomplete(result: RefreshResult) -> None:
    """What a refresh before serving could not do (served as last indexed)."""
    for err in result.down.values():
        click.echo(f"warning: hub refresh: {err.message}; its packages are shown as last "
                   "indexed", err=True)
    for line in result.failed:
        click.echo(f"warning: hub refresh: could not index {line}; tried again at the next "
                   "refresh", err=True)


def _waiting(holder: str) -> None:
    click.echo(f"another {holder} is running; waiting for it (Ctrl-C to stop, --no-wait "
               "fails instead)", err=True)


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
    from ebpm.hub.search import load_documents
    from ebpm.hub.search import search as find

    query = " ".join(terms)
    if not query.split():  # `ebpm search ''` matched every package
        from ebpm.errors import UsageError

        raise UsageError("search: no word to search for",
                         hint="give one, e.g. `ebpm search tcp`; `ebpm hub list` lists every "
                              "package")
    documents = load_documents()
    hits = find(documents, query, limit=limit)
    if as_json:  # an empty listing is [] (docs/cli.md)
        echo_json([h.to_dict() for h in hits])
        return
    if not documents:  # an empty listing says so on stderr, as hub list does
        click.echo(f"the hub index is empty; {_EMPTY_HINT}", err=True)
        return
    if not hits:
        from ebpm.cli.app import suggest

        guess = suggest(query.lower(), sorted({d.name for d in documents}))
        click.echo(f"no package matches {query!r} "
                   f"({_count(len(documents), 'package')} indexed)"
                   + (f"; did you mean {guess!r}?" if guess else ""), err=True)
        return
    table(["PACKAGE", "VERSION", "SIGNED", "PROGRAMS", "DESCRIPTION"],
          [(h.repository, h.version, "yes" if h.signed else "no", ",".join(h.types) or "-",
            h.description) for h in hits])


@click.group()
def hub() -> None:
    """The catalog: index registries, search them, build or serve a web site."""


@hub.command()
@click.argument("sources", nargs=-1)
@_no_wait
@registry_options
@json_option
def refresh(sources: tuple[str, ...], no_wait: bool, access: RegistryAccess,
            as_json: bool) -> None:
    """Index registries; only new digests are fetched.

    SOURCES are HOST, HOST/NAMESPACE/* or HOST/REPOSITORY (default: the sources indexed
    before, else $EBPM_REGISTRY)."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import progress
    from ebpm.hub.crawl import update

    with progress() as reporter:
        index, result = update(sources, access=access, reporter=reporter, wait=not no_wait,
                               on_wait=_waiting)
    # (when no registry answered, nothing was indexed: only the error is said)
    if result.refreshed and as_json:
        echo_json({
            "sources": index.sources, "repositories": len(index.repositories),
            "versions": len(index.versions), "listed": result.listed,
            "fetched": result.fetched, "added": result.added, "removed": result.removed,
            "resigned": result.resigned, "skipped": result.skipped, "failed": result.failed,
            "unreachable": result.unreachable, "refreshed": result.refreshed,
        })
    elif result.refreshed:
        click.echo(f"indexed {_count(len(index.repositories), 'repository', 'repositories')}, "
                   f"{_count(len(index.versions), 'version')} from "
                   f"{', '.join(result.refreshed)}: {len(result.added)} new, "
                   f"{len(result.removed)} removed, "
                   f"{_count(len(result.resigned), 'signature')} checked again")
        for line in result.skipped:
            click.echo(f"skipped {line}", err=True)
    failure = result.failure()  # what was indexed is saved; cron still sees a failure
    if failure is not None:
        raise failure


@hub.command()
@click.argument("sources", nargs=-1, required=True)
@_no_wait
@json_option
def forget(sources: tuple[str, ...], no_wait: bool, as_json: bool) -> None:
    """Stop indexing SOURCES (as `hub refresh` remembered them).

    Their repositories leave the index unless another source selects them. Offline."""
    from ebpm.cli.app import echo_json
    from ebpm.hub.crawl import forget as forget_sources

    index, result = forget_sources(sources, wait=not no_wait, on_wait=_waiting)
    if as_json:
        echo_json({"sources": index.sources, "repositories": len(index.repositories),
                   "removed": result.removed})
        return
    click.echo(f"forgot {', '.join(sources)}: "
               f"{_count(len(result.repositories), 'repository', 'repositories')}, "
               f"{_count(len(result.removed), 'version')} left the index; sources now: "
               f"{', '.join(index.sources) or 'none'}")


@hub.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the indexed packages (latest versions, offline)."""
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


@hub.command()
@click.option("-o", "--output", "output", required=True, type=OutputPath(file_okay=False),
              help="Directory to write the site into (new, empty, or an earlier hub build).")
@click.option("--refresh", "refresh_first", is_flag=True,
              help="Refresh the index from its sources first (else: build from the index).")
@click.option("--title", default="ebpm hub", show_default=True, help="The site's name.")
@_no_wait
@registry_options
@json_option
def build(output: str, refresh_first: bool, title: str, no_wait: bool, access: RegistryAccess,
          as_json: bool) -> None:
    """Build the static web catalog into DIR.

    Built from the index; publish DIR on any static host or open DIR/index.html."""
    from ebpm.cli.app import echo_json
    from ebpm.errors import NotFoundError
    from ebpm.hub.index import HubIndex, hub_lock
    from ebpm.hub.site import build_site

    failure = None
    if refresh_first:
        from ebpm.cli.output import progress
        from ebpm.hub.crawl import update

        with progress() as reporter:
            _, refreshed = update(access=access, reporter=reporter, wait=not no_wait,
                                  on_wait=_waiting)
        failure = refreshed.failure(built=True)  # the site is built; exit 1 as hub refresh
    with hub_lock("hub build", wait=not no_wait, on_wait=_waiting, reading=True):
        index = HubIndex.load()
        if not index.repositories:
            raise NotFoundError("hub build: the hub index is empty", hint=_EMPTY_HINT)
        result = build_site(index, output, title=title)
    if as_json:
        echo_json({"output": output, "written": result.written, "removed": result.removed,
                   "bytes": result.bytes})
    else:
        click.echo(f"wrote {_count(len(result.written), 'file')} ({result.bytes:,} bytes) to "
                   f"{output}"
                   + (f", removed {_count(len(result.removed), 'stale page')}"
                      if result.removed else "")
                   + f"; open {output}/index.html")
    if failure is not None:
        raise failure


@hub.command()
@click.option("-o", "--output", "output", type=OutputPath(file_okay=False), default=None,
              help="Site directory (default: $EBPM_HOME/ebpm/hub/site).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--secret", envvar="EBPM_HUB_SECRET", default="",
              help="Shared secret registries send as `Authorization: Bearer SECRET` with "
              "notifications; without it notifications are refused. [env: EBPM_HUB_SECRET]")
@click.option("--no-refresh", is_flag=True, help="Serve the index as it is (no refresh first).")
@registry_options
def serve(output: str | None, host: str, port: int, secret: str, no_refresh: bool,
          access: RegistryAccess) -> None:
    """Serve the site; registry notifications keep it fresh.

    Registries POST events to /-/events; the pages of the repositories they name are
    rebuilt. Stop with Ctrl-C."""
    import signal
    from pathlib import Path

    from ebpm.errors import NotFoundError, UsageError
    from ebpm.hub.crawl import parse_source, update
    from ebpm.hub.index import HubIndex, hub_dir, hub_lock
    from ebpm.hub.server import EVENTS_PATH, HubServer, Rebuild
    from ebpm.hub.site import build_site

    if not (no_refresh or access.offline):
        refreshed = update(access=access, on_wait=_waiting)[1]
        failure = refreshed.failure()
        if failure is not None and not refreshed.refreshed:
            raise failure  # no registry answered
        _warn_incomplete(refreshed)
    with hub_lock("hub serve", on_wait=_waiting):
        index = HubIndex.load()
        if not index.repositories and not index.sources:
            raise NotFoundError("hub serve: the hub index is empty", hint=_EMPTY_HINT)
        site = Path(output) if output else hub_dir() / "site"
        build_site(index, site)

    def report(rebuild: Rebuild) -> None:
        what = ", ".join(rebuild.repositories)
        if rebuild.error:
            click.echo(f"rebuild of {what} failed: {rebuild.error}", err=True)
        else:
            click.echo(f"rebuilt {_count(len(rebuild.pages), 'page')} for {what} "
                       f"in {rebuild.seconds * 1000:.0f} ms")

    server = HubServer(site, [parse_source(s) for s in index.sources], host=host, port=port,
                       secret=secret, access=access, on_rebuild=report)
    try:
        server.start()
    except OSError as err:
        import errno

        in_use = err.errno == errno.EADDRINUSE
        raise UsageError(f"hub serve: cannot listen on {host}:{port}: "
                         f"{err.strerror or err}",
                         hint="choose another --port (0 picks a free one)" if in_use else
                         "--host takes an address of this machine (127.0.0.1, 0.0.0.0 for "
                         "all)") from err
    signal.signal(signal.SIGTERM, lambda *_: server.shutdown_soon())
    click.echo(f"serving {site} at {server.url}/ "
               f"({_count(len(index.repositories), 'package')} from "
               f"{', '.join(index.sources)})")
    if secret:
        click.echo(f"registry notifications: {server.url}{EVENTS_PATH} "
                   "(header Authorization: Bearer $EBPM_HUB_SECRET)")
    else:
        click.echo("registry notifications are off: set --secret or EBPM_HUB_SECRET", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
