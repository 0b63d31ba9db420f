"""Options shared by commands: those that talk to a registry, or to the running agent."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = ["registry_options", "json_option", "registry_access", "OutputPath"]


class OutputPath(click.Path):
    """A path to write to (-o): as click.Path, and never empty (`-o ''` named the current
    directory, and a file was renamed over it)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path names nothing to write", param, ctx)
        return super().convert(value, param, ctx)


def registry_access(*, insecure: bool = False, ca_file: str | None = None) -> RegistryAccess:
    """The one `RegistryAccess` of this command: its flags, the global --offline, the env."""
    from ebpm.access import RegistryAccess

    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    offline = bool(root is not None and root.params.get("offline"))
    return RegistryAccess.from_env(insecure=insecure, ca_file=ca_file, offline=offline)


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--insecure and --ca-file; the command receives them as one `access: RegistryAccess`."""

    @functools.wraps(f)
    def command(*args: Any, insecure: bool, ca_file: str | None, **kwargs: Any) -> Any:
        return f(*args, access=registry_access(insecure=insecure, ca_file=ca_file), **kwargs)

    command = click.option(
        "--ca-file", envvar="EBPM_CA_FILE", type=click.Path(exists=True, dir_okay=False),
        help="CA bundle to trust for the registry's TLS certificate. [env: EBPM_CA_FILE]",
    )(command)
    command = click.option(
        "--insecure", is_flag=True,
        help="Allow plain http (and no TLS checks) for a non-loopback registry. "
        "[env: EBPM_INSECURE_REGISTRIES=host,...]",
    )(command)
    return command


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


def agent_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--agent and --token-file, for the commands that talk to a running agent."""
    f = click.option(
        "--token-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
        help="The agent's bearer token (TCP agents). [env: EBPM_AGENT_TOKEN]")(f)
    f = click.option(
        "--agent", "agent", metavar="ADDRESS",
        help="The agent: a socket path or http(s)://HOST:PORT (default: the local agent's "
        "socket). [env: EBPM_AGENT]")(f)
    return f


def client_from(agent: str | None, token_file: str | None) -> Any:
    from ebpm.serve.auth import read_token
    from ebpm.serve.client import AgentClient

    return AgentClient(agent, token=read_token(token_file))
