"""`ebpm lock`, `install`, `update`, `tree` and `outdated`: a project's dependencies."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ebpm.cli.install import ENV_HELP as _ENV
from ebpm.cli.install import MAX_JOBS, PROJECT_HELP
from ebpm.cli.install import packages_json as _packages_json
from ebpm.cli.options import json_option, registry_options
from ebpm.deps.project import DEFAULT_JOBS

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["lock", "update", "tree", "outdated"]  # install: ebpm/cli/install.py (lean entry)

_DIR = click.option(
    "-C", "--directory", type=click.Path(file_okay=False), help=PROJECT_HELP,
)
_JOBS = click.option(
    "-j", "--jobs", default=DEFAULT_JOBS, show_default=True, type=click.IntRange(1, MAX_JOBS),
    envvar="EBPM_JOBS", help="Packages fetched in parallel. [env: EBPM_JOBS]",
)
_UNSIGNED = click.option(
    "--allow-unsigned", is_flag=True,
    help="Accept packages the trust policy cannot verify (loud; not recommended).",
)


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in (_DIR, _JOBS, _UNSIGNED):
        f = option(f)
    return registry_options(json_option(f))


def _warn_unsigned(allow_unsigned: bool) -> None:
    if allow_unsigned:
        click.echo("warning: --allow-unsigned: signatures are not enforced", err=True)


def _echo_lock(result: Any, as_json: bool) -> None:
    from ebpm.cli.app import echo_json

    if as_json:
        echo_json({
            "lockfile": str(result.path), "written": result.written,
            "changes": [{"package": p, "from": a, "to": b} for p, a, b in result.changes],
            "packages": _packages_json(result.packages),
            "equivalences": list(result.equivalences),
        })
        return
    for note in result.equivalences:
        click.echo(f"note: {note}")
    for package, old, new in result.changes:
        if old and new:
            click.echo(f"updated {package} {old} -> {new}")
        elif new:
            click.echo(f"added   {package} {new}".rstrip())
        else:
            click.echo(f"removed {package} {old}".rstrip())
    n = len(result.lockfile.packages)
    state = "written" if result.written else "unchanged"
    click.echo(f"{result.path}: {n} package{'s' if n != 1 else ''} locked ({state})")


@click.command(epilog=_ENV)
@_common
def lock(directory: str | None, jobs: int, allow_unsigned: bool, access: RegistryAccess,
         as_json: bool) -> None:
    """Resolve ebpm.toml's [dependencies], fetch and verify them, and write ebpm.lock.

    Versions already in ebpm.lock are kept where they still satisfy the ranges.
    """
    from ebpm.cli.output import progress
    from ebpm.deps.lock import lock as lock_project
    from ebpm.deps.project import project_root

    _warn_unsigned(allow_unsigned)
    with progress(not as_json) as reporter:
        result = lock_project(project_root(directory), allow_unsigned=allow_unsigned, access=access,
                              jobs=jobs, reporter=reporter)
    _echo_lock(result, as_json)


@click.command(epilog=_ENV)
@click.argument("names", nargs=-1)
@_common
def update(names: tuple[str, ...], directory: str | None, jobs: int, allow_unsigned: bool,
           access: RegistryAccess, as_json: bool) -> None:
    """Move NAMES (every dependency when none) to the newest versions their ranges allow.

    NAMES are dependency names of ebpm.toml or package ids from ebpm.lock.
    """
    from ebpm.cli.output import progress
    from ebpm.deps.lock import update as update_project
    from ebpm.deps.project import project_root

    _warn_unsigned(allow_unsigned)
    with progress(not as_json) as reporter:
        result = update_project(project_root(directory), names, allow_unsigned=allow_unsigned,
                                access=access, jobs=jobs,
                                reporter=reporter)
    _echo_lock(result, as_json)


@click.command(epilog=_ENV)
@_DIR
@json_option
def tree(directory: str | None, as_json: bool) -> None:
    """Show the locked dependency graph (from ebpm.lock; no network).

    \b
    Examples:
      ebpm tree
      ebpm tree -C ../app --json
    """
    from ebpm.deps.project import project_root

    root = project_root(directory)
    if as_json:
        from ebpm.cli.app import echo_json
        from ebpm.deps.tree import tree_json

        echo_json(tree_json(root))
        return
    from ebpm.deps.tree import tree as tree_lines

    for line in tree_lines(root):
        click.echo(line)


@click.command(epilog=_ENV)
@_DIR
@registry_options
@json_option
def outdated(directory: str | None, access: RegistryAccess, as_json: bool) -> None:
    """List locked packages that have newer versions: wanted (in range) and latest.

    Exits 3 when something is outdated (0 when all is current), so CI can check it; a lock
    that is out of date with ebpm.toml is an error (1): run `ebpm lock` first.
    Offline, it reads the tag lists cached in the store and says how old they are.
    """
    import time

    from ebpm.cli.app import ExitStatus, echo_json
    from ebpm.cli.output import table
    from ebpm.deps.outdated import check_outdated
    from ebpm.deps.project import project_root

    report = check_outdated(project_root(directory), access=access)
    rows = report.rows
    if report.offline:
        since = (time.strftime(" (oldest cached %Y-%m-%d %H:%M UTC)",
                               time.gmtime(report.cached_since)) if report.cached_since else "")
        git = "; git refs from the store's copies of the repositories" if report.git else ""
        click.echo(f"offline: versions from the tag lists cached in the store{since}{git}; "
                   "run online for the registry's current tags", err=True)
        for key in report.unchecked:
            click.echo(f"offline: {key}: not checked (the store has no copy of its ref)",
                       err=True)
    if as_json:
        echo_json([{"package": r.package, "current": r.current, "wanted": r.wanted,
                    "latest": r.latest} for r in rows])
    elif not rows:
        click.echo("all dependencies are up to date", err=True)
    else:
        table(["PACKAGE", "CURRENT", "WANTED", "LATEST"],
              [(r.package, r.current, r.wanted, r.latest) for r in rows])
    if rows:
        raise SystemExit(ExitStatus.OUTDATED)
