"""`ebpm lock`, `install`, `update`, `add`, `remove`, `tree` and `outdated`: a project's
dependencies."""

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

# install: ebpm/cli/install.py (lean entry)
__all__ = ["lock", "update", "add", "remove", "tree", "outdated"]

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


def _lock_json(result: Any) -> dict[str, Any]:
    return {
        "lockfile": str(result.path), "written": result.written,
        "changes": [{"package": p, "from": a, "to": b} for p, a, b in result.changes],
        "packages": _packages_json(result.packages),
        "equivalences": list(result.equivalences),
    }


def _echo_lock(result: Any, as_json: bool, *, dry_run: bool = False) -> None:
    from ebpm.cli.app import echo_json

    if as_json:
        echo_json(_lock_json(result))
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
    state = ("unchanged" if not result.written else
             "dry run: not written" if dry_run else "written")
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


_DRY_RUN = click.option(
    "--dry-run", is_flag=True,
    help="Resolve and fetch as it would, print the changes, and write neither ebpm.toml nor "
         "ebpm.lock.",
)


@click.command(epilog=_ENV)
@click.argument("specs", nargs=-1, metavar="[NAME[@RANGE]]...")
@click.option("--path", "path", metavar="DIR",
              help="A local package directory (NAME defaults to its package name).")
@click.option("--git", "git", metavar="URL", help="A git repository (https, http, git, ssh, file).")
@click.option("--branch", metavar="BRANCH", help="With --git: follow this branch.")
@click.option("--tag", metavar="TAG", help="With --git: this tag.")
@click.option("--rev", metavar="COMMIT", help="With --git: this commit (7 to 40 hex digits).")
@click.option("--subdir", metavar="DIR", help="With --git: the package's directory in it.")
@click.option("--url", "url", metavar="URL", help="A single .bpf.o over http(s); needs --sha256.")
@click.option("--sha256", metavar="HEX", help="With --url: the file's sha256.")
@click.option("--private", is_flag=True,
              help="A copy of its own, resolved apart from the rest of the graph.")
@click.option("--rename", metavar="NAME",
              help="The dependency's name in ebpm.toml, when not the repository's.")
@_DRY_RUN
@_common
def add(specs: tuple[str, ...], path: str | None, git: str | None, branch: str | None,
        tag: str | None, rev: str | None, subdir: str | None, url: str | None,
        sha256: str | None, private: bool, rename: str | None, dry_run: bool,
        directory: str | None, jobs: int, allow_unsigned: bool, access: RegistryAccess,
        as_json: bool) -> None:
    """Add dependencies to ebpm.toml (or change their ranges), then lock.

    NAME is a repository of the default registry ($EBPM_REGISTRY) or REGISTRY/REPOSITORY;
    without @RANGE the range is ^ the newest release. ebpm.toml keeps its comments and
    layout; only the added packages move in ebpm.lock. Nothing is written when the graph
    does not resolve.
    """
    from ebpm.cli.output import progress
    from ebpm.deps.edit import Request
    from ebpm.deps.edit import add as add_dependencies
    from ebpm.deps.project import project_root
    from ebpm.errors import UsageError

    if (path or git or url or rename) and len(specs) > 1:
        raise UsageError("add: --path, --git, --url and --rename take one NAME",
                         hint="add the others with another ebpm add")
    requests = tuple(
        Request(spec, path=path or "", git=git or "", branch=branch or "", tag=tag or "",
                rev=rev or "", subdir=subdir or "", url=url or "", sha256=sha256 or "",
                private=private, rename=rename or "")
        for spec in specs or ("",))
    _warn_unsigned(allow_unsigned)
    with progress(not as_json) as reporter:
        result = add_dependencies(project_root(directory), requests, dry_run=dry_run,
                                  access=access, allow_unsigned=allow_unsigned, jobs=jobs,
                                  reporter=reporter)
    _echo_edit(result, as_json)


@click.command(epilog=_ENV)
@click.argument("names", nargs=-1, required=True)
@_DRY_RUN
@_common
def remove(names: tuple[str, ...], dry_run: bool, directory: str | None, jobs: int,
           allow_unsigned: bool, access: RegistryAccess, as_json: bool) -> None:
    """Remove dependencies from ebpm.toml, then lock what is left.

    NAMES are dependency names of ebpm.toml; ebpm.toml keeps its comments and layout.
    (`ebpm rm` removes packages from the local store.)
    """
    from ebpm.cli.output import progress
    from ebpm.deps.edit import remove as remove_dependencies
    from ebpm.deps.project import project_root

    _warn_unsigned(allow_unsigned)
    with progress(not as_json) as reporter:
        result = remove_dependencies(project_root(directory), names, dry_run=dry_run,
                                     access=access, allow_unsigned=allow_unsigned, jobs=jobs,
                                     reporter=reporter)
    _echo_edit(result, as_json)


def _requirement(value: Any) -> str:
    """A [dependencies] value in a few words: its range, or where it comes from."""
    if isinstance(value, str):
        return value
    if "version" in value or "ref" in value:
        return str(value.get("version", "*")) + (", private" if value.get("private") else "")
    if "path" in value:
        return f"path {value['path']}"
    if "url" in value:
        return f"url {value['url']}"
    ref = next((f" {k} {value[k]}" for k in ("branch", "tag", "rev") if k in value), "")
    subdir = f" subdir {value['subdir']}" if value.get("subdir") else ""
    return f"git {value['git']}{ref}{subdir}" + (", private" if value.get("private") else "")


def _echo_edit(result: Any, as_json: bool) -> None:
    from ebpm.cli.app import echo_json

    if as_json:
        echo_json({
            "dependencies": [{"action": c.action, "name": c.name, "package": c.package,
                              "requirement": c.requirement, "previous": c.previous}
                             for c in result.changes],
            "manifest": str(result.manifest), "manifest_written": result.manifest_written,
            "dry_run": result.dry_run, "lock": _lock_json(result.lock),
        })
        return
    for c in result.changes:
        now = _requirement(c.previous if c.action == "removed" else c.requirement)
        if c.action == "replaced":
            now = f"{_requirement(c.previous)} -> {now}"
        registry = not c.package.startswith(("path:", "url:", "git+"))
        click.echo(f"{c.action} {c.name} {now}" + (f" ({c.package})" if registry else ""))
    _echo_lock(result.lock, False, dry_run=result.dry_run)
    if result.dry_run:
        click.echo(f"dry run: {result.manifest} and {result.lock.path} left as they were",
                   err=True)


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
