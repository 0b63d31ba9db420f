"""`ebpm version`, `ebpm completion SHELL` and `ebpm man`: about the CLI itself."""

from __future__ import annotations

from pathlib import Path

import click

from ebpm.cli.options import OutputPath, json_option

__all__ = ["version", "completion", "man"]


@click.command()
@json_option
def version(as_json: bool) -> None:
    """Show the versions of ebpm and of what it runs with: Python, the kernel, libbpf,
    wasmtime, clang and bpftool (a missing one says why).

    \b
    Examples:
      ebpm version
      ebpm version --json | jq -r .libbpf.version
    """
    from ebpm.cli.app import echo_json
    from ebpm.dev.about import components

    found = components()
    if as_json:
        echo_json({c.name: {"version": c.version, "detail": c.detail} for c in found})
        return
    width = max(len(c.name) for c in found) + 1
    for c in found:
        click.echo(f"{c.name + ':':<{width}} {c.version or '-':<16} {c.detail}".rstrip())


SHELLS = ("bash", "zsh", "fish")


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script for SHELL (commands, options, file names; the global
    options -v, --offline and -o json after a command too, where they are accepted).

    \b
    Examples:
      ebpm completion bash > /etc/bash_completion.d/ebpm
      echo 'eval "$(ebpm completion zsh)"' >> ~/.zshrc
      ebpm completion fish > ~/.config/fish/completions/ebpm.fish
    """
    from click.shell_completion import get_completion_class

    from ebpm.cli.app import COMPLETE_VAR, cli

    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS has a class
    click.echo(cls(cli, {}, "ebpm", COMPLETE_VAR).source())


@click.command()
@click.argument("command", nargs=-1)
@click.option("-d", "--dir", "directory", type=OutputPath(file_okay=False), metavar="DIR",
              help="Write the pages into DIR: COMMAND's and its subcommands' (ebpm-trust.1, "
                   "ebpm-trust-add.1, ...), without COMMAND every page (ebpm.1, ebpm-push.1, "
                   "...).")
def man(command: tuple[str, ...], directory: str | None) -> None:
    """Print the man page of COMMAND (ebpm's own without one), made from this CLI's help;
    with --dir, write it and its subcommands' pages (without COMMAND, all of them) into DIR.

    \b
    Examples:
      ebpm man push | man -l -
      ebpm man trust add
      ebpm man --dir /usr/local/share/man/man1
      ebpm man trust --dir ./man1
    """
    from ebpm.cli.manpages import all_pages, page

    if directory is not None:
        from ebpm.files import atomic_write

        out = Path(directory)
        for name, text in list(all_pages(command)):  # an unknown COMMAND: nothing written
            atomic_write(out / name, text)
            click.echo(f"wrote {out / name}")
        return
    click.echo(page(list(command)), nl=False)
