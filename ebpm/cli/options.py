"""Options shared by commands: those that talk to a registry, or to the running agent.

Declared once in `ebpm.cli.params` (REGISTRY_OPTIONS, AGENT_OPTIONS), for click commands
through these decorators and for `params.Command`s (the lean entry's) directly."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ebpm.cli.params import AGENT_OPTIONS, REGISTRY_OPTIONS, registry_access

__all__ = ["registry_options", "json_option", "registry_access", "agent_options", "OutputPath"]


class OutputPath(click.Path):
    """A path to write to (-o): as click.Path, and never empty (`-o ''` named the current
    directory, and a file was renamed over it)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path names nothing to write", param, ctx)
        return super().convert(value, param, ctx)


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--insecure and --ca-file; the command receives them as one `access: RegistryAccess`."""

    @functools.wraps(f)
    def command(*args: Any, insecure: bool, ca_file: str | None, **kwargs: Any) -> Any:
        return f(*args, access=registry_access(insecure=insecure, ca_file=ca_file), **kwargs)

    wrapped: Callable[..., Any] = command
    for option in reversed(REGISTRY_OPTIONS):
        wrapped = option.to_click(wrapped)
    return wrapped


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def agent_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--agent and --token-file, for the commands that talk to a running agent."""
    for option in reversed(AGENT_OPTIONS):
        f = option.to_click(f)
    return f
