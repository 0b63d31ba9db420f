"""Shell completion: click's, plus the global options wherever the parser takes them.

`normalize_args` (ebpm/cli/lean.py) accepts -v/--verbose and --offline after any command and
-o json/--output json as --json on a command that has --json, anywhere before `--`; click's
completion offers a command its own options only. `install()` registers a completion class for
each shell that completes the command line as the parser reads it: the global options after a
command (not one already given), `json` after -o/--output where -o is only that alias, and no
option of ebpm's after `--` (the words there are the package's). Imported only when the shell
asks for completions (app.run), so nothing else pays for it.
"""

from __future__ import annotations

from click import Context, Option, UsageError
from click.core import ParameterSource
from click.shell_completion import (
    BashComplete,
    CompletionItem,
    FishComplete,
    ShellComplete,
    ZshComplete,
    _resolve_context,
    _resolve_incomplete,
    add_completion_class,
)

from ebpm.cli.lean import _root_option, normalize_args

__all__ = ["install"]

OUTPUT = ("-o", "--output")  # the spellings of --json that take a value: `-o json`


def install() -> None:
    """Complete ebpm's command lines as the parser reads them, in every shell ebpm supports."""
    for shell in (BashComplete, ZshComplete, FishComplete):
        add_completion_class(type(shell.__name__, (GlobalOptions, shell), {}))


class GlobalOptions(ShellComplete):
    """A shell's completion (mixed in before its class) with ebpm's global options."""

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        try:
            return self._completions(normalize_args(args), incomplete)
        except UsageError:  # a command that does not exist (`ebpm lsit <TAB>`): nothing to
            return []  # offer, and no usage error printed into the line being typed

    def _completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        if "--" in args and incomplete[:1] == "-":
            return []  # the package's arguments (`ebpm run X -- --pid`), or refused
        found = None if "--" in args else _value_of(args, incomplete)
        if found is not None:
            before, word, value = found
            ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, before)
            if word not in _names(ctx):  # -o is --json's alias here, or refused
                has_json = _json_option(ctx) is not None
                return [CompletionItem("json", help="Print JSON for scripts (as --json).")
                        ] if has_json and "json".startswith(value) else []
        ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, args)
        obj, incomplete = _resolve_incomplete(ctx, args.copy(), incomplete)
        items = obj.shell_complete(ctx, incomplete)
        if obj is ctx.command and ctx.parent is not None and incomplete[:1] == "-":
            items.extend(_global_options(ctx, incomplete))
        return items


def _value_of(args: list[str], incomplete: str) -> tuple[list[str], str, str] | None:
    """(the words before it, -o or --output, the value typed so far) when `incomplete` is the
    value of -o/--output: `-o js`, `--output=js` (bash: the words `--output`, `=` and `js`)."""
    word, equals, value = incomplete.partition("=")
    if equals and word in OUTPUT:
        return args, word, value
    end = len(args) - 1 if args[-1:] == ["="] else len(args)
    if end and args[end - 1] in OUTPUT:
        return args[:end - 1], args[end - 1], incomplete
    return None


def _names(ctx: Context) -> set[str]:
    """Every option name the command at `ctx` has of its own."""
    return {name for param in ctx.command.get_params(ctx) if isinstance(param, Option)
            for name in (*param.opts, *param.secondary_opts)}


def _json_option(ctx: Context) -> Option | None:
    return next((p for p in ctx.command.params if isinstance(p, Option) and "--json" in p.opts),
                None)


def _given(ctx: Context, option: Option) -> bool:
    return option.name is not None and ctx.get_parameter_source(option.name) is \
        ParameterSource.COMMANDLINE


def _global_options(ctx: Context, incomplete: str) -> list[CompletionItem]:
    """The options that `normalize_args` takes at the command at `ctx` and it lacks, starting
    with `incomplete`; like click's own, not one already given."""
    root = ctx.find_root()
    found: list[tuple[str, str | None]] = [
        (name, option.help) for option in root.command.params
        if isinstance(option, Option) and not _given(root, option)
        for name in option.opts if _root_option(name)]
    as_json = _json_option(ctx)
    if as_json is not None and not _given(ctx, as_json):
        found += [(name, f"{name} json: {as_json.help}") for name in OUTPUT]
    own = _names(ctx)
    return [CompletionItem(name, help=text) for name, text in found
            if name.startswith(incomplete) and name not in own]
