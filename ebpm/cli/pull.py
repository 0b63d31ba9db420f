"""`ebpm pull REF`: fetch a package into the local store, verified. On the lean entry
(`ebpm.cli.lean`): parsed and run without importing click, which costs a cold pull more than
its six requests (see "Where the pull targets stand" in docs/architecture.md)."""

from __future__ import annotations

import os
import sys

from ebpm.cli.exits import echo
from ebpm.cli.params import Argument, Command, Invalid, Option, Text

TYPE_CHECKING = False  # typing not imported before a pull's first request leaves
if TYPE_CHECKING:
    from typing import Any

    from ebpm.access import RegistryAccess

__all__ = ["PULL", "pull"]


class Directory(Text):
    """A directory to write into (made if absent): not empty, not an existing file; anything
    else is click's to say (`OutputPath(file_okay=False)`)."""

    def convert(self, value: str) -> Any:
        if not value.strip() or os.path.isfile(value):
            raise Invalid(value)
        return value

    def click(self) -> Any:
        from ebpm.cli.options import OutputPath

        return OutputPath(file_okay=False)


def _echo_json(value: Any) -> None:
    import json

    echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def pull(ref: str, allow_unsigned: bool, output: str | None, as_json: bool,
         access: RegistryAccess) -> None:
    """Pull REF into the local store, verifying digests and signatures.

    REF is [registry/]repository[:tag][@digest]; without a tag, the highest version.
    With --offline (or EBPM_OFFLINE=1) it is served from the store with no network call.
    """
    from ebpm.cli.startup import pause, resume

    # No cycle collector while a pull runs, as during every command's start-up: its young
    # collections (~24 in a cold pull, ~2 ms of its CPU) only walked what its imports made;
    # a pull makes no reference cycles but an error's or a retry's traceback, bounded by the
    # retries' limit (ebpm.cli.startup; docs/architecture.md, the pull's sixth round).
    pause()
    try:
        _pull(ref, allow_unsigned, output, as_json, access)
    finally:
        resume()


def _pull(ref: str, allow_unsigned: bool, output: str | None, as_json: bool,
          access: RegistryAccess) -> None:
    from ebpm.transfer.pull import pull as pull_package

    if allow_unsigned:
        echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    if not as_json and sys.stdout.isatty() and sys.stderr.isatty():
        from ebpm.cli.output import progress  # bars on a terminal (rich, click)

        with progress() as reporter:
            package = pull_package(ref, allow_unsigned=allow_unsigned, access=access,
                                   reporter=reporter)
    else:
        package = pull_package(ref, allow_unsigned=allow_unsigned, access=access)
    files: list[str] = []
    if output:
        from pathlib import Path

        from ebpm.transfer.export import export

        files = [str(p) for p in export(package, Path(output))]
    if as_json:
        _echo_json({"reference": str(package.reference), "digest": package.digest,
                    "name": package.config.name, "version": package.config.version,
                    "cached": package.cached, "files": files})
        return
    echo(f"{package.reference.name}:{package.reference.tag or ''}  {package.digest}"
         f"  {package.config.name} {package.config.version}"
         + ("  (from store)" if package.cached else ""))
    for f in files:
        echo(f"  wrote {f}")


PULL = Command("pull", pull, registry=True, help=pull.__doc__ or "", params=[
    Argument("ref"),
    Option("--allow-unsigned", flag=True,
           help="Accept a package the trust policy cannot verify (loud; not recommended)."),
    Option("-o", "--output", type=Directory(), metavar="DIRECTORY",
           help="Also write the package's files (by layer title) into this directory."),
    Option("--json", dest="as_json", flag=True, help="Print JSON for scripts."),
])
