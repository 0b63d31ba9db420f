"""A command's options as data: one declaration serves both the full click CLI (help, man pages,
completion, every error message) and the lean entry (`ebpm.cli.lean`), which parses the hot
commands' command lines without importing click.

A `Command` lists its `Option`s and `Argument`s and the function that does the work. `to_click`
builds the click command from it (click is imported there, and only there); `parse` reads a
command line with the same meaning and returns the same values click would, or None whenever
it is not sure (help, an unknown or malformed option, a value click would refuse, anything
unusual): the caller then runs the full click CLI, so behaviour and messages stay click's.
tests/test_cli_params.py runs the same command lines through both and compares.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from ebpm.access import RegistryAccess

__all__ = [
    "Argument", "Command", "Option", "Text", "Float", "Int", "Choice", "File",
    "REGISTRY_OPTIONS", "AGENT_OPTIONS", "parse", "to_click", "flag_from_env",
    "registry_access", "client_from",
]


class Invalid(Exception):  # noqa: N818 - internal: "let click say what is wrong"
    """A value the lean parser will not decide on."""


class Text:
    """Any string (click's default type)."""

    def convert(self, value: str) -> Any:
        return value

    def click(self) -> Any:
        return None


class Float(Text):
    """A finite float above `minimum` (click.FloatRange(min=minimum, min_open=True), which
    would take `nan` and `inf`: a --duration that never ends)."""

    def __init__(self, minimum: float) -> None:
        self.minimum = minimum

    def convert(self, value: str) -> Any:
        try:
            number = float(value)
        except ValueError:
            raise Invalid(value) from None
        if not (number > self.minimum and number != float("inf")):  # (nan > x is False)
            raise Invalid(value)
        return number

    def click(self) -> Any:
        import click

        class Finite(click.FloatRange):
            def convert(self, value: Any, param: click.Parameter | None,
                        ctx: click.Context | None) -> Any:
                number = super().convert(value, param, ctx)
                if number != number or number == float("inf"):
                    self.fail(f"{value!r} is not a finite number.", param, ctx)
                return number

        return Finite(min=self.minimum, min_open=True)


class Int(Text):
    """An integer at least `minimum` and, when given, at most `maximum`
    (click.IntRange(min=minimum, max=maximum))."""

    def __init__(self, minimum: int, maximum: int | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value: str) -> Any:
        try:
            number = int(value)
        except ValueError:
            raise Invalid(value) from None
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            raise Invalid(value)
        return number

    def click(self) -> Any:
        import click

        return click.IntRange(min=self.minimum, max=self.maximum)


class Choice(Text):
    """One of `choices`, exactly (click.Choice)."""

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def convert(self, value: str) -> Any:
        if value not in self.choices:
            raise Invalid(value)
        return value

    def click(self) -> Any:
        import click

        return click.Choice(self.choices)


class File(Text):
    """An existing, readable file that is not a directory (click.Path(exists=True,
    dir_okay=False))."""

    def convert(self, value: str) -> Any:
        import stat

        try:
            st = os.stat(value)
        except (OSError, ValueError):
            raise Invalid(value) from None
        if stat.S_ISDIR(st.st_mode) or not os.access(value, os.R_OK):
            raise Invalid(value)
        return value

    def click(self) -> Any:
        import click

        return click.Path(exists=True, dir_okay=False)


TEXT = Text()


class Option:
    """`--name VALUE` (or a flag, a counter, a repeatable option), as click.option takes it."""

    def __init__(self, *decls: str, dest: str | None = None, flag: bool = False,
                 count: bool = False, multiple: bool = False, type: Text = TEXT,  # noqa: A002
                 metavar: str | None = None, help: str = "",  # noqa: A002
                 envvar: str | None = None, default: str | None = None) -> None:
        self.decls = decls
        longest = max(decls, key=len)
        self.dest = dest or longest.lstrip("-").replace("-", "_")
        self.flag, self.count, self.multiple = flag, count, multiple
        self.type, self.metavar, self.help, self.envvar = type, metavar, help, envvar
        self.value = default  # a value option's default (shown in its help)

    @property
    def takes_value(self) -> bool:
        return not (self.flag or self.count)

    def default(self) -> Any:
        if self.flag:
            return False
        if self.count:
            return 0
        if self.multiple:
            return ()
        return None if self.value is None else self.type.convert(self.value)

    def to_click(self, f: Callable[..., Any]) -> Callable[..., Any]:
        import click

        kwargs: dict[str, Any] = {"help": self.help}
        if self.flag:
            kwargs["is_flag"] = True
        if self.count:
            kwargs["count"] = True
        if self.multiple:
            kwargs["multiple"] = True
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.envvar:
            kwargs["envvar"] = self.envvar
        if self.value is not None:
            kwargs["default"], kwargs["show_default"] = self.value, True
        kind = self.type.click()
        if kind is not None:
            kwargs["type"] = kind
        return click.option(*self.decls, self.dest, **kwargs)(f)


class Argument:
    """A positional argument; `rest=True`: all the remaining ones (nargs=-1, unprocessed)."""

    def __init__(self, name: str, *, rest: bool = False, metavar: str | None = None) -> None:
        self.name, self.rest, self.metavar = name, rest, metavar

    def to_click(self, f: Callable[..., Any]) -> Callable[..., Any]:
        import click

        if self.rest:
            return click.argument(self.name, nargs=-1, type=click.UNPROCESSED)(f)
        return click.argument(self.name, metavar=self.metavar)(f)


# the options every registry command takes; the command receives them as `access=`
REGISTRY_OPTIONS = (
    Option("--insecure", flag=True,
           help="Allow plain http (and no TLS checks) for a non-loopback registry. "
           "[env: EBPM_INSECURE_REGISTRIES=host,...]"),
    Option("--ca-file", envvar="EBPM_CA_FILE", type=File(),
           help="CA bundle to trust for the registry's TLS certificate. [env: EBPM_CA_FILE]"),
)

# the options of the commands that talk to a running agent
AGENT_OPTIONS = (
    Option("--agent", dest="agent", metavar="ADDRESS",
           help="The agent: a socket path or http(s)://HOST:PORT (default: the local agent's "
           "socket). [env: EBPM_AGENT]"),
    Option("--token-file", type=File(), metavar="FILE",
           help="The agent's bearer token (TCP agents). [env: EBPM_AGENT_TOKEN]"),
)


class Command:
    """A command as data: its parameters, its help and the function that does the work.

    `callback` receives every parameter by its `dest`; with `registry=True` it receives
    `access=` (a `RegistryAccess`) in place of --insecure and --ca-file. A `rest` argument is
    the package's: it is given only after `--` (an unknown option or a stray argument is a
    usage error reminding of `--`). `signals`: the command handles SIGINT itself and takes a
    Ctrl-C held since start-up (`ebpm.interrupts`). `extra`: stray arguments are not click's
    usage error but the callback's `extra=` (a tuple; the lean entry leaves any to click), for
    a command that explains them itself. The lean entry does not set up `logging`:
    a command whose work logs calls `exits.setup_logging(0)` first (a no-op after the full
    CLI's own). `resumes`: the command turns the cycle collector back on itself where its own
    start-up ends (`ebpm.cli.startup.resume`; `ebpm run`: once the run is under way); any other
    has it on again when invoked."""

    def __init__(self, name: str, callback: Callable[..., Any], *,
                 params: Sequence[Option | Argument], help: str,  # noqa: A002
                 registry: bool = False, signals: bool = False, extra: bool = False,
                 resumes: bool = False) -> None:
        self.name, self.callback, self.help, self.registry = name, callback, help, registry
        self.signals, self.extra, self.resumes = signals, extra, resumes
        self.params = tuple(params) + (REGISTRY_OPTIONS if registry else ())
        self._click: Any = None

    @property
    def options(self) -> list[Option]:
        return [p for p in self.params if isinstance(p, Option)]

    @property
    def arguments(self) -> list[Argument]:
        return [p for p in self.params if isinstance(p, Argument)]

    def invoke(self, params: dict[str, Any], extra: Sequence[str] = ()) -> Any:
        """Do the work with parsed parameters (from click or from `parse`). A Ctrl-C held
        since start-up is raised here, unless the command takes it itself (`signals`); the
        cycle collector is on again, unless the command does it itself (`resumes`)."""
        from ebpm.cli.startup import freeze, resume

        if self.resumes:
            freeze()
        else:
            resume()
        if not self.signals:
            from ebpm import interrupts

            interrupts.release()
        params = dict(params)
        if self.extra:
            params["extra"] = tuple(extra)
        if self.registry:
            params["access"] = registry_access(insecure=params.pop("insecure"),
                                               ca_file=params.pop("ca_file"))
        return self.callback(**params)


def registry_access(*, insecure: bool = False, ca_file: str | None = None) -> RegistryAccess:
    """The one `RegistryAccess` of this command: its flags and the environment (where the
    global --offline has put EBPM_OFFLINE=1)."""
    from ebpm.access import RegistryAccess

    return RegistryAccess.from_env(insecure=insecure, ca_file=ca_file)


def client_from(agent: str | None, token_file: str | None) -> Any:
    """The agent client (`ebpm.serve.client.AgentClient`) that --agent and --token-file name."""
    from ebpm.serve.auth import read_token
    from ebpm.serve.client import AgentClient

    return AgentClient(agent, token=read_token(token_file))


def flag_from_env(name: str) -> bool | None:
    """A flag's environment variable as click reads it (unset or empty: False); None for a
    value click would refuse."""
    raw = os.environ.get(name)
    if not raw:
        return False
    value = raw.strip().lower()
    if value in ("1", "true", "t", "yes", "y", "on"):
        return True
    if value in ("0", "false", "f", "no", "n", "off"):
        return False
    return None


def parse(command: Command, args: Sequence[str]) -> dict[str, Any] | None:
    """`args` (after the command's name) as the parameters click would pass the callback, or
    None when the full CLI should read them (help, errors, anything this parser leaves out)."""
    by_name = {decl: opt for opt in command.options for decl in opt.decls}
    values: dict[str, Any] = {}
    positional: list[str] = []
    separated = False
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            separated = True
            positional.extend(args[i:])
            break
        if arg[:1] != "-" or arg == "-":
            positional.append(arg)
            continue
        name, eq, given = arg.partition("=")
        opt = by_name.get(name)
        if opt is None or (eq and not opt.takes_value) or (eq and not name.startswith("--")):
            return None  # help, an unknown option, short options run together, `--flag=x`
        if opt.flag:
            values[opt.dest] = True
            continue
        if opt.count:
            values[opt.dest] = values.get(opt.dest, 0) + 1
            continue
        if not eq:
            if i >= len(args) or args[i][:1] == "-":
                return None  # missing value, or one that looks like an option
            given = args[i]
            i += 1
        try:
            value = opt.type.convert(given)
        except Invalid:
            return None
        if opt.multiple:
            values[opt.dest] = (*values.get(opt.dest, ()), value)
        else:
            values[opt.dest] = value
    for opt in command.options:
        if opt.dest in values:
            continue
        values[opt.dest] = opt.default()
        if opt.envvar:
            raw = os.environ.get(opt.envvar)
            if raw:
                if opt.flag or opt.count or opt.multiple:
                    return None  # (no declared option needs these)
                try:
                    values[opt.dest] = opt.type.convert(raw)
                except Invalid:
                    return None
    for param in command.arguments:
        if param.rest:
            if positional and not separated:
                return None  # package arguments go after `--`: click says so
            values[param.name] = tuple(positional)
            positional = []
        elif not positional:
            return None  # missing: click says so
        else:
            values[param.name] = positional.pop(0)
    if positional:
        return None
    return values


def to_click(command: Command) -> Any:
    """The click command of `command` (built once)."""
    if command._click is not None:
        return command._click
    import click

    rest = next((a.name for a in command.arguments if a.rest), None)
    first = command.arguments[0].name.upper() if command.arguments else "ARG"

    class PassThrough(click.Command):
        """Its own options before `--`, the package's after it. An unknown option is a usage
        error with the closest option and a reminder of `--`."""

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            separated = "--" in args  # the parser consumes `args`
            try:
                out = super().parse_args(ctx, args)
            except click.NoSuchOption as err:
                if not err.possibilities:
                    err.message = (  # type: ignore[misc]
                        f"{err.message} Package flags go after `--`: "
                        f"ebpm {command.name} {first} -- {err.option_name} ...")
                raise
            extra = ctx.params.get(rest or "") or ()
            if extra and not separated:
                raise click.UsageError(
                    f"unexpected argument {extra[0]!r}: package arguments go after `--` "
                    f"(ebpm {command.name} {first} -- {' '.join(extra)})", ctx=ctx)
            return out

    def callback(**params: Any) -> Any:
        extra = click.get_current_context().args if command.extra else ()
        return command.invoke(params, extra)

    f: Callable[..., Any] = callback
    for param in reversed(command.params):
        f = param.to_click(f)
    command._click = click.command(
        command.name, cls=PassThrough if rest else click.Command, help=command.help,
        context_settings={"help_option_names": ["-h", "--help"],
                          "allow_extra_args": command.extra})(f)
    return command._click
