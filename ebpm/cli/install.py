"""`ebpm install`: the project's dependency graph into the local store, verified. On the lean
entry (`ebpm.cli.lean`): parsed and run without importing click, which a 50-package
`install --frozen` would otherwise pay on every start (see "Where the pull targets stand" in
docs/architecture.md)."""

from __future__ import annotations

import os
import sys

from ebpm.cli.exits import echo
from ebpm.cli.params import Command, Int, Invalid, Option, Text
from ebpm.deps.project import DEFAULT_JOBS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.access import RegistryAccess

__all__ = ["INSTALL", "install", "packages_json", "MAX_JOBS", "ENV_HELP", "PROJECT_HELP"]

MAX_JOBS = 64  # -j bound: a pool larger than this only adds threads

PROJECT_HELP = ("The project directory, used as given (default: the nearest directory holding "
                "ebpm.toml or ebpm.lock, from the current one upwards).")
ENV_HELP = (
    "Short dependency names resolve against $EBPM_REGISTRY (default localhost:5000); "
    "--offline (EBPM_OFFLINE=1) serves everything from the store in $EBPM_HOME."
)


class ProjectDirectory(Text):
    """A directory, not an existing file (click.Path(file_okay=False))."""

    def convert(self, value: str) -> Any:
        if os.path.isfile(value):
            raise Invalid(value)
        return value

    def click(self) -> Any:
        import click

        return click.Path(file_okay=False)


def packages_json(packages: Any) -> list[dict[str, Any]]:
    """The installed (or locked) packages as `--json` shows them."""
    return [
        {"package": p.package, "version": p.version, "kind": p.kind, "digest": p.digest,
         "cached": p.cached, "signed_by": p.signed_by}
        for p in packages
    ]


def install(locked: bool, frozen: bool, directory: str | None, jobs: int, allow_unsigned: bool,
            as_json: bool, access: RegistryAccess, extra: tuple[str, ...] = ()) -> None:
    """Make every package of the project's dependency graph available in the store, verified.

    Resolves (and writes ebpm.lock) only when the lock is missing or stale, unless --locked or
    --frozen. Every package is checked against the digests and signer pinned in ebpm.lock.

    Short dependency names resolve against $EBPM_REGISTRY (default localhost:5000); --offline
    (EBPM_OFFLINE=1) serves everything from the store in $EBPM_HOME.
    """
    from ebpm.deps.install import install as install_project
    from ebpm.deps.project import project_root

    if extra:  # the cargo/helm/npm habit: `install REF`
        from ebpm.errors import UsageError

        raise UsageError(f"install takes no package ({' '.join(extra)}): it installs the "
                         "dependency graph of the project's ebpm.toml and ebpm.lock",
                         hint=f"fetch one package with `ebpm pull {extra[0]}`, or add it under "
                              "[dependencies] in ebpm.toml and run `ebpm install`")
    root = project_root(directory)
    if allow_unsigned:
        echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    if not as_json and sys.stdout.isatty() and sys.stderr.isatty():
        from ebpm.cli.output import progress  # bars on a terminal (rich, click)

        with progress() as reporter:
            result = install_project(root, locked=locked, frozen=frozen,
                                     allow_unsigned=allow_unsigned, access=access, jobs=jobs,
                                     reporter=reporter)
    else:
        result = install_project(root, locked=locked, frozen=frozen,
                                 allow_unsigned=allow_unsigned, access=access, jobs=jobs)
    if as_json:
        import json

        echo(json.dumps({"lockfile": str(result.path), "resolved": result.resolved,
                         "packages": packages_json(result.packages)},
                        indent=2, sort_keys=True, default=str))
        return
    n = len(result.packages)
    fetched = result.fetched
    note = f" ({result.path} written)" if result.resolved else ""
    echo(f"installed {n} package{'s' if n != 1 else ''}: {fetched} fetched, "
         f"{n - fetched} from the store{note}")


INSTALL = Command("install", install, registry=True, extra=True, help=install.__doc__ or "",
                  params=[
    Option("--locked", flag=True,
           help="Fail if ebpm.lock is missing or out of date with ebpm.toml."),
    Option("--frozen", flag=True,
           help="Install ebpm.lock exactly, with no resolution (ebpm.toml is optional)."),
    Option("-C", "--directory", type=ProjectDirectory(), help=PROJECT_HELP),
    Option("-j", "--jobs", type=Int(1, MAX_JOBS), default=str(DEFAULT_JOBS), envvar="EBPM_JOBS",
           help="Packages fetched in parallel. [env: EBPM_JOBS]"),
    Option("--allow-unsigned", flag=True,
           help="Accept packages the trust policy cannot verify (loud; not recommended)."),
    Option("--json", dest="as_json", flag=True, help="Print JSON for scripts."),
])
