"""Man pages (roff) made from the click commands: the same text as `--help`, so they never
drift from the CLI."""

from __future__ import annotations

import datetime
import inspect
import os
from collections.abc import Iterator, Sequence

import click

from ebpm import __version__

__all__ = ["page", "all_pages", "walk"]


def _roff(text: str) -> str:
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line.replace("-", "\\-"))
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    """click's help paragraphs as roff: a paragraph after a \\b line keeps its lines."""
    out: list[str] = []
    for para in text.strip().split("\n\n"):
        if para.startswith("\b\n"):
            out += [".PP", ".nf", _roff(para[2:]), ".fi"]
        else:
            out += [".PP", _roff(" ".join(line.strip() for line in para.splitlines()))]
    return out


def walk() -> Iterator[tuple[list[str], click.Command]]:
    """Every command path with its command: ([], ebpm), (["push"], push), (["trust", "add"], …)."""
    from ebpm.cli.app import cli

    ctx = click.Context(cli, info_name="ebpm")

    def visit(path: list[str], cmd: click.Command,
              parent: click.Context) -> Iterator[tuple[list[str], click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            sub_ctx = click.Context(cmd, info_name=path[-1] if path else "ebpm", parent=parent)
            for name in cmd.list_commands(sub_ctx):
                sub = cmd.get_command(sub_ctx, name)
                if sub is not None and not sub.hidden:
                    yield from visit([*path, name], sub, sub_ctx)

    yield from visit([], cli, ctx)


def _context(path: list[str]) -> tuple[click.Context, click.Command]:
    from ebpm.cli.app import cli

    ctx = click.Context(cli, info_name="ebpm")
    cmd: click.Command = cli
    for name in path:
        if not isinstance(cmd, click.Group):
            raise click.UsageError(f"'{name}': {ctx.command_path} has no subcommands")
        sub = cmd.get_command(ctx, name)
        if sub is None:
            raise click.UsageError(f"no command '{' '.join(['ebpm', *path])}'")
        ctx = click.Context(sub, info_name=name, parent=ctx)
        cmd = sub
    return ctx, cmd


def page(path: list[str]) -> str:
    """The man page of `ebpm PATH...` (section 1)."""
    ctx, cmd = _context(path)
    title = "-".join(["ebpm", *path])
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch and \
        epoch.isdigit() else datetime.datetime.now(datetime.UTC)
    out = [f'.TH "{title.upper()}" "1" "{when:%Y-%m-%d}" "ebpm {__version__}" "ebpm manual"',
           ".SH NAME", f"{_roff(title)} \\- {_roff(cmd.get_short_help_str(limit=200))}",
           ".SH SYNOPSIS", f".B {_roff(ctx.command_path)}",
           _roff(" ".join(cmd.collect_usage_pieces(ctx)))]
    if cmd.help:
        description, _, examples = inspect.cleandoc(cmd.help).partition("\b\nExamples:")
        out += [".SH DESCRIPTION", *_paragraphs(description)]
        if examples.strip():
            out += [".SH EXAMPLES", ".nf", _roff(inspect.cleandoc(examples)), ".fi"]
    options = [r for p in cmd.get_params(ctx)
               if isinstance(p, click.Option) and (r := p.get_help_record(ctx))]
    if options:
        out.append(".SH OPTIONS")
        for names, help_text in options:
            out += [".TP", f".B {_roff(names)}", _roff(help_text)]
    if isinstance(cmd, click.Group):
        out.append(".SH COMMANDS")
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += [".TP", f".B {_roff(name)}", _roff(sub.get_short_help_str(limit=200)),
                        f"See \\fB{title}\\-{_roff(name)}\\fR(1)."]
    if cmd.epilog:
        out += [".SH ENVIRONMENT", _roff(cmd.epilog)]
    out += [".SH SEE ALSO", "\\fBebpm\\fR(1), https://github.com/ebpm (docs/cli.md)", ""]
    return "\n".join(out)


def all_pages(under: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """(file name, roff) for `ebpm UNDER...` and each of its subcommands (ebpm and every
    subcommand without UNDER); a command that does not exist is a usage error."""
    _context(list(under))
    for path, _ in walk():
        if path[:len(under)] == list(under):
            yield "-".join(["ebpm", *path]) + ".1", page(path)
