"""The lean entry: the hot commands (`ebpm run`, `ebpm logs`) parsed and run without click.

`main(args)` recognises `ebpm [-v] [--offline] HOT ...` for the commands named in `HOT`, whose
modules declare them as `ebpm.cli.params.Command`s (the same declaration the click CLI is
built from), parses their options with `params.parse` and calls the command's function.
Whenever it is not sure (help, a usage error, an unknown option or command, -v), it returns
None and `ebpm.cli.main` runs the full click CLI, so behaviour and messages stay the same.
Errors raised by the command leave through the one error path (`exits.guarded`).

To put another command on it: declare it as a `params.Command` in a module that does not
import click at its top (its function prints with `exits.echo`), point its COMMANDS entry in
`ebpm/cli/app.py` at that object, and add it to `HOT` with the same "module:attribute".
"""

from __future__ import annotations

import os
import sys

from ebpm.cli.params import Command, Option, flag_from_env, parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["HOT", "ROOT_OPTIONS", "json_as_output", "main", "normalize_args"]

# the commands the lean entry runs: name -> "module:attribute" of its params.Command
# (the same as its entry in ebpm/cli/app.py:COMMANDS; tests/test_cli_params.py checks)
HOT: dict[str, str] = {
    "run": "ebpm.cli.run:RUN",
    "logs": "ebpm.cli.logs:LOGS",
    "pull": "ebpm.cli.pull:PULL",
    "install": "ebpm.cli.install:INSTALL",
}

# the root's own options (click's `ebpm` group is built from these too)
ROOT_OPTIONS = (
    Option("-v", "--verbose", count=True,
           help="More log output (-vv for debug, libbpf's log)."),
    Option("--offline", flag=True, envvar="EBPM_OFFLINE",
           help="Make no network call; serve everything from the local store. "
           "[env: EBPM_OFFLINE]"),
)

# Options every command takes, wherever they are typed (before `--`): moved to the root
# (-v, --offline) or to the command (--json; -o json and --output json are its aliases).
ROOT_FLAGS = frozenset({"--offline", "--verbose"})
JSON_SPELLINGS = frozenset({"--json", "-ojson", "-o=json", "--output=json"})


def _root_option(arg: str) -> bool:
    """-v, -vv, -vvv...; --verbose, --offline (and `--offline=1`: click says it takes no
    value, as it would at the root, rather than "no such option" on the command)."""
    return (arg in ROOT_FLAGS or arg.partition("=")[0] in ROOT_FLAGS
            or len(arg) > 1 and arg[0] == "-" and arg[1:] == "v" * (len(arg) - 1))


def _json_words(head: list[str], i: int) -> int:
    """How many words from head[i] on spell --json: 1 (`--json`, `-ojson`...), 2 (`-o json`),
    or 0."""
    if head[i] in JSON_SPELLINGS:
        return 1
    if head[i] in ("-o", "--output") and i + 1 < len(head) and head[i + 1] == "json":
        return 2
    return 0


def _head(args: list[str]) -> list[str]:
    """The words before `--` (ebpm's; the rest are the package's)."""
    return args[:args.index("--")] if "--" in args else args


def normalize_args(args: list[str]) -> list[str]:
    """Accept the global options anywhere before `--`, as docker, kubectl and cargo do:
    `ebpm run X -vv`, `ebpm install --frozen --offline`, `ebpm list -o json`."""
    head = _head(args)
    tail = args[len(head):]
    root: list[str] = []
    rest: list[str] = []
    as_json = False
    i = 0
    while i < len(head):
        arg = head[i]
        used = _json_words(head, i)
        if used:
            as_json = True
            i += used
            continue
        (root if _root_option(arg) else rest).append(arg)
        i += 1
    return [*root, *rest, *(["--json"] if as_json else []), *tail]


def json_as_output(args: list[str]) -> bool:
    """Whether `args` spell --json as -o or --output (`-o json`, `-ojson`, `--output=json`)."""
    head = _head(args)
    return any(_json_words(head, i) and head[i] != "--json" for i in range(len(head)))


def hot_command(name: str) -> Command | None:
    """The declaration of hot command `name` (its module imported), or None."""
    entry = HOT.get(name)
    if entry is None:
        return None
    module, _, attr = entry.partition(":")
    __import__(module)  # (not importlib: its import brings `warnings`, ~0.25 ms before the load)
    found = getattr(sys.modules[module], attr)
    assert isinstance(found, Command)
    return found


def split(args: list[str]) -> tuple[bool, Command, dict[str, Any]] | None:
    """(--offline, the command, its parameters) when the lean entry can run `args`."""
    args = normalize_args(args)
    offline = False
    i = 0
    while i < len(args) and args[i] == "--offline":
        offline = True
        i += 1
    if i >= len(args):
        return None  # -v (logging set up by the full CLI), --help, --version, nothing
    command = hot_command(args[i])
    if command is None:
        return None
    from_env = flag_from_env("EBPM_OFFLINE")
    if from_env is None:
        return None  # click says what is wrong with it
    params = parse(command, args[i + 1:])
    if params is None:
        return None
    return offline or from_env, command, params


def main(args: list[str]) -> int | None:
    """Run `args` on the lean path; None: the full CLI must run them."""
    found = split(args)
    if found is None:
        return None
    offline, command, params = found
    from ebpm.cli.exits import guarded

    def call() -> None:
        if offline:
            os.environ["EBPM_OFFLINE"] = "1"
        command.invoke(params)

    return guarded(call)
