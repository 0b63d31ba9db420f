"""The command tree, the exit statuses and the one path by which errors leave the CLI."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from ebpm import __version__
from ebpm.cli.exits import ExitStatus, abort, closed_pipe, guarded, setup_logging
from ebpm.cli.lean import ROOT_OPTIONS, json_as_output, normalize_args
from ebpm.cli.params import Command, to_click

__all__ = ["ExitStatus", "abort", "run", "cli", "echo_json", "normalize_args"]


# command name -> ("module:attribute", summary); modules load only when their command runs,
# so `ebpm --help` prints the summaries without importing any command.
COMMANDS: dict[str, tuple[str, str]] = {
    "add": ("ebpm.cli.deps:add", "Add dependencies to ebpm.toml, then lock."),
    "build": (
        "ebpm.cli.build:build",
        "Compile a package directory into .ebpm/ (object, BTF, metadata).",
    ),
    "cache": ("ebpm.cli.cache:cache", "Manage the local store ($EBPM_HOME)."),
    "completion": ("ebpm.cli.about:completion", "Print a shell completion script (bash/zsh/fish)."),
    "hub": ("ebpm.cli.hub:hub", "Index registries; build or serve the web catalog."),
    "export": ("ebpm.cli.export:export", "Write a package as an eunomia package.json."),
    "init": ("ebpm.cli.build:init", "Start a new package from a template."),
    "inspect": ("ebpm.cli.inspect:inspect", "Show a package's manifest, metadata and layers."),
    "install": ("ebpm.cli.install:INSTALL",
                "Fetch and verify the project's whole dependency graph."),
    "key": ("ebpm.cli.sign:key", "Manage signing keys."),
    "list": ("ebpm.cli.store:list_", "List the packages in the local store."),
    "load": ("ebpm.cli.sign:load", "Load an archive made by `ebpm save` into the store."),
    "lock": ("ebpm.cli.deps:lock", "Resolve [dependencies] into ebpm.lock."),
    "man": ("ebpm.cli.about:man", "Print or write the man pages (made from this CLI)."),
    "login": ("ebpm.cli.login:login", "Store credentials for a registry."),
    "logout": ("ebpm.cli.login:logout", "Forget the credentials stored for a registry."),
    "outdated": ("ebpm.cli.deps:outdated", "List locked packages that have newer versions."),
    "publish": ("ebpm.cli.build:publish", "Build a package, then push it."),
    "pull": ("ebpm.cli.pull:PULL", "Pull a package into the local store, verified."),
    "push": ("ebpm.cli.transfer:push",
             "Push a package directory, .bpf.o, .wasm or package.json to a registry."),
    "registry": ("ebpm.cli.registry:registry", "Run a local OCI registry."),
    "logs": ("ebpm.cli.logs:LOGS", "Print a program's events from the running agent."),
    "ps": ("ebpm.cli.serve:ps", "List the programs the running agent runs."),
    "remove": ("ebpm.cli.deps:remove", "Remove dependencies from ebpm.toml, then lock."),
    "rm": ("ebpm.cli.store:rm", "Remove packages from the local store."),
    "run": ("ebpm.cli.run:RUN", "Load and attach a package and print its events."),
    "save": ("ebpm.cli.sign:save", "Save packages with their signatures as an OCI-layout tar."),
    "search": ("ebpm.cli.hub:search", "Search the hub's index of registries (offline)."),
    "serve": ("ebpm.cli.serve:serve", "Run the node agent (HTTP API, metrics)."),
    "sign": ("ebpm.cli.sign:sign", "Sign a package in its registry (cosign format)."),
    "stop": ("ebpm.cli.serve:stop", "Stop programs the running agent runs."),
    "tags": ("ebpm.cli.inspect:tags", "List a repository's tags, versions in semver order."),
    "tree": ("ebpm.cli.deps:tree", "Show the locked dependency graph."),
    "trust": ("ebpm.cli.sign:trust", "Edit the trust policy."),
    "update": ("ebpm.cli.deps:update", "Move dependencies to the newest allowed versions."),
    "verify": ("ebpm.cli.sign:verify", "Verify a package's signatures against the trust policy."),
    "version": ("ebpm.cli.about:version",
                "Show the versions of ebpm, libbpf, the kernel, wasmtime, clang."),
}

# what docker, helm, cargo, npm and kubectl users type, and ebpm's word for it
OTHER_TOOLS: dict[str, str] = {
    "ls": "list", "images": "list", "rmi": "rm",
    "uninstall": "rm", "delete": "rm", "info": "inspect", "show": "inspect",
    "describe": "inspect", "get": "pull", "fetch": "pull", "download": "pull",
    "upload": "push", "prune": "cache prune", "clean": "cache prune", "find": "search",
    "start": "run", "exec": "run", "kill": "stop", "keys": "key", "catalog": "hub list",
    "deps": "tree",
}


def suggest(word: str, choices: list[str]) -> str | None:
    """The closest of `choices` to a mistyped `word`, if any is close."""
    import difflib

    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return matches[0] if matches else None


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name) or super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            guess = OTHER_TOOLS.get(name.lower()) or suggest(name, self.list_commands(ctx))
            ctx.fail(f"No such command '{name}'." + (f" Did you mean '{guess}'?" if guess else "")
                     + " See 'ebpm --help'.")
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """--version alone, or with the root's other options: `ebpm --version extra` is a
        usage error rather than the version with `extra` ignored."""
        options = 0  # (the root's options take no value: the first other word ends them)
        while options < len(args) and args[options][:1] == "-" and args[options] != "--":
            options += 1
        if "--version" in args[:options] and options < len(args):
            ctx.fail(f"--version takes no command or argument (got '{args[options]}'); "
                     "`ebpm version` shows what ebpm runs with.")
        return super().parse_args(ctx, args)

    # A reader gone from stdout (`ebpm list | head -1`) ends the command quietly with 0:
    # click's own main would catch the BrokenPipeError first and exit 1 (set -o pipefail).
    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except BrokenPipeError:  # (help, printed while the command line is parsed)
            raise click.exceptions.Exit(closed_pipe()) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            raise click.exceptions.Exit(closed_pipe()) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in sorted(COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module_name, attr = entry[0].split(":")
        found = getattr(importlib.import_module(module_name), attr)
        if not isinstance(found, Command):  # (a Command does both when it starts)
            from ebpm import interrupts
            from ebpm.cli.startup import resume

            resume()  # (frozen; the cycle collector on again: ebpm.cli.startup)
            interrupts.release()  # imported: a Ctrl-C held since start-up is raised now
        command: click.Command = to_click(found) if isinstance(found, Command) else found
        _add_examples(name, command)
        return command


def _add_examples(path: str, command: click.Command) -> None:
    """Every command's --help ends with examples (ebpm/cli/examples.py), subcommands too."""
    from ebpm.cli.examples import with_examples

    command.help = with_examples(path, command.help)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _add_examples(f"{path} {name}", sub)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ebpm", message="%(prog)s %(version)s")
@ROOT_OPTIONS[0].to_click
@ROOT_OPTIONS[1].to_click
@click.pass_context
def cli(ctx: click.Context, verbose: int, offline: bool) -> None:
    """ebpm: pull, verify and run signed eBPF packages from any OCI registry.

    \b
    Short names resolve against $EBPM_REGISTRY (default localhost:5000).
    The store lives in $EBPM_HOME (default ~/.cache/ebpm).
    """
    setup_logging(verbose)
    if offline:
        os.environ["EBPM_OFFLINE"] = "1"
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


_add_examples("", cli)


def echo_json(value: Any) -> None:
    """Print a result for scripts: indented, sorted JSON on stdout."""
    import json

    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def _improve(err: click.ClickException, args: list[str]) -> None:
    """Usage errors in ebpm's words: --json and -o on a command without them, `-o json` where
    -o names a directory, a bad value that came from the environment (click itself guesses
    mistyped commands of sub-groups; LazyGroup does it for the top level)."""
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return
    if isinstance(err, click.NoSuchOption) and err.option_name in ("--json", "-o", "--output"):
        has_json = any("--json" in p.opts for p in ctx.command.params)
        if err.option_name == "--json" and ctx.parent is None:
            message = ("--json and -o json go after a command that prints data "
                       "(`ebpm version --json`: ebpm's versions)")
        elif ctx.parent is None:
            message = "-o takes only json, after a command that prints data (-o json or --json)"
        elif has_json:
            message = "-o takes only json here (-o json or --json)"
        else:
            message = (f"'{ctx.command_path}' has no JSON output and no -o "
                       "(--json and -o json are for commands that print data)")
        err.message = message + "."  # type: ignore[misc]
        err.possibilities = None  # type: ignore[misc]  # (what was typed, or --version)
    elif isinstance(err, click.MissingParameter):
        if (isinstance(err.param, click.Option) and "-o" in err.param.opts
                and json_as_output(args)):
            err.message = ("-o json means --json: a directory or file named json is "  # type: ignore[misc]
                           "written -o ./json.")
    elif isinstance(err, click.BadParameter) and err.param is not None:
        variable = _environment_variable(ctx, err.param)
        if variable:
            err.param_hint = (f"{variable} (the environment's value for "
                              f"{err.param.get_error_hint(ctx)})")


def _environment_variable(ctx: click.Context, param: click.Parameter) -> str | None:
    """The environment variable `param`'s value came from, if it came from one."""
    from click.core import ParameterSource

    if param.name is None or ctx.get_parameter_source(param.name) is not \
            ParameterSource.ENVIRONMENT:
        return None
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or ())
    return next((name for name in names if os.environ.get(name)), None)


def _click_error(err: Exception, args: list[str]) -> int | None:
    if isinstance(err, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        return ExitStatus.INTERRUPTED
    if isinstance(err, click.ClickException):
        _improve(err, args)
        err.show()
        return err.exit_code
    if isinstance(err, click.exceptions.Exit):
        return err.exit_code
    return None


# set by the completion script when the shell asks for completions (`ebpm completion SHELL`)
COMPLETE_VAR = "_EBPM_COMPLETE"


def run(args: list[str]) -> int:
    """The full CLI: `args` through click (help, usage errors, every command)."""
    if os.environ.get(COMPLETE_VAR):
        from ebpm.cli.completion import install

        install()  # (before click's main answers the shell: the global options)
    return guarded(lambda: cli.main(args=normalize_args(args), prog_name="ebpm",
                                    standalone_mode=False), lambda err: _click_error(err, args))
