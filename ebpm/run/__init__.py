"""The run use case: find a package (path, URL or registry reference), load it and stream results.

`run(target, args=[...])` resolves TARGET to object bytes + metadata (`source`), then runs the
package's wasm userspace (`wasm`) or loads and attaches it through
`ebpm.loader.session.Session` (`native`), handing decoded events and map snapshots to an
`EventSink` (`sink`) until `duration`, `max_events`, Ctrl-C or SIGTERM; everything is detached
before it returns (`dispatch`).

The names below are imported from their modules on first use (PEP 562), so that importing one
module of this package (`ebpm.run.sink` for the printers, `ebpm.cli.run` for `run --detach`)
does not import the others.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.run.dispatch import (
        help_for,
        launch,
        open_for_run,
        open_target,
        parse_attach,
        run,
        run_package,
    )
    from ebpm.run.native import (
        DEFAULT_INTERVAL,
        Launch,
        complete_config,
        package_help,
        run_object,
        run_session,
        signals_stop_runs,
    )
    from ebpm.run.sink import EventSink, RunSummary
    from ebpm.run.source import (
        LocalPackage,
        StagedPackage,
        fetch_url,
        load_path,
        resolve_ref,
        resolve_target,
        stage,
    )
    from ebpm.run.wasm import run_wasm

_WHERE = {
    "DEFAULT_INTERVAL": "native", "EventSink": "sink", "Launch": "native",
    "launch": "dispatch", "LocalPackage": "source",
    "RunSummary": "sink", "complete_config": "native", "fetch_url": "source",
    "help_for": "dispatch", "load_path": "source", "open_target": "dispatch",
    "open_for_run": "dispatch", "StagedPackage": "source", "stage": "source",
    "package_help": "native", "parse_attach": "dispatch", "resolve_ref": "source",
    "resolve_target": "source", "run": "dispatch", "run_object": "native",
    "run_session": "native", "run_package": "dispatch", "run_wasm": "wasm",
    "signals_stop_runs": "native",
}

__all__ = [
    "DEFAULT_INTERVAL", "EventSink", "Launch", "LocalPackage", "RunSummary", "StagedPackage",
    "complete_config", "fetch_url", "help_for", "launch", "load_path", "open_for_run",
    "open_target", "package_help", "parse_attach", "resolve_ref", "resolve_target", "run",
    "run_object", "run_session", "run_package", "run_wasm", "signals_stop_runs", "stage",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'ebpm.run' has no attribute {name!r}")
    qualified = f"ebpm.run.{module}"
    __import__(qualified)  # (not importlib: it brings `warnings`, before libbpf's load starts)
    return getattr(sys.modules[qualified], name)
