"""Options shared by the commands that talk to a registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["registry_options", "json_option"]


def registry_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--ca-file", envvar="EBPM_CA_FILE", type=click.Path(exists=True, dir_okay=False),
        help="CA bundle to trust for the registry's TLS certificate. [env: EBPM_CA_FILE]",
    )(f)
    f = click.option(
        "--insecure", is_flag=True,
        help="Allow plain http (and no TLS checks) for a non-loopback registry. "
        "[env: EBPM_INSECURE_REGISTRIES=host,...]",
    )(f)
    return f


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)
