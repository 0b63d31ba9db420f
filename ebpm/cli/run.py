"""`ebpm run REF|PATH|URL [-- ARGS]`: load a package, print its events and maps until stopped."""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["run", "format_value", "TableReporter", "JsonReporter"]


def format_value(value: Any, name: str = "") -> str:
    """A cell of the table: strings lists joined, `*addr` byte lists as IP addresses."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return " ".join(v for v in value if v)
    if name.endswith("addr") and isinstance(value, list) and len(value) in (4, 16) and all(
        isinstance(v, int) and 0 <= v < 256 for v in value
    ):
        import ipaddress

        raw = bytes(value)
        if len(raw) == 16 and not any(raw[4:]):
            raw = raw[:4]
        return str(ipaddress.ip_address(raw))
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


class TableReporter:
    """Events as aligned columns under a header; maps as histograms or key/value tables."""

    def __init__(self, out: Any, unit: str = "value") -> None:
        self.out = out
        self.unit = unit
        self.widths: list[int] = []
        self.fields: tuple[str, ...] = ()
        self.type_widths: tuple[int, ...] = ()

    def started(self, session: Any) -> None:
        self.fields = tuple(session.fields)
        self.type_widths = tuple(getattr(session, "widths", ()))

    def _header(self, event: dict[str, Any]) -> None:
        self.fields = self.fields or tuple(event)
        typed = dict(zip(self.fields, self.type_widths, strict=False))
        self.widths = [
            max(len(f), len(format_value(event.get(f, ""), f)), typed.get(f, 0), 5)
            for f in self.fields
        ]
        cells = [f.upper().ljust(w) for f, w in zip(self.fields, self.widths, strict=True)]
        from rich.console import Console

        Console(file=self.out, highlight=False, soft_wrap=True).print(
            " ".join(cells).rstrip(), style="bold"
        )

    def event(self, event: dict[str, Any]) -> None:
        if not self.widths:
            self._header(event)
        cells = []
        last = len(self.fields) - 1
        widths = self.widths
        for i, (f, w) in enumerate(zip(self.fields, widths, strict=True)):
            text = format_value(event.get(f, ""), f)
            if len(text) > w and i != last:
                widths[i] = len(text)  # wider from here on; earlier rows stay as printed
            cells.append(text if i == last else text.ljust(w))
        self.out.write(" ".join(cells) + "\n")

    def maps(self, snapshots: list[Any], final: bool) -> None:
        import time

        from ebpm.loader.hist import log2_hist_lines

        lines: list[str] = []
        if not final or not self.widths:
            lines.append(time.strftime("%H:%M:%S"))
        for snap in snapshots:
            if snap.kind == "hist":
                for key, value in snap.rows:
                    label = {k: v for k, v in value.items() if k != "slots" and v not in ("", 0)}
                    if len(snap.rows) > 1 or label:
                        parts = [f"{snap.name} {format_value(key)}"] + [
                            f"{k} = {format_value(v)}" for k, v in label.items()]
                        lines.append("")
                        lines.append(", ".join(parts))
                    lines.append("")
                    lines.extend(log2_hist_lines(value["slots"], self.unit))
                if not snap.rows:
                    lines.append(f"{snap.name}: (empty)")
            else:
                lines.append(f"{snap.name}:")
                for key, value in snap.rows:
                    lines.append(f"  {format_value(key):<24} {format_value(value)}")
        lines.append("")
        self.out.write("\n".join(lines) + "\n")


class JsonReporter:
    """One JSON object per line: events as they are; maps as {"map", "kind", "rows"}."""

    def __init__(self, out: Any) -> None:
        import json

        self.out = out
        self.dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                      default=str).encode

    def started(self, session: Any) -> None:
        pass

    def event(self, event: dict[str, Any]) -> None:
        self.out.write(self.dumps(event) + "\n")

    def maps(self, snapshots: list[Any], final: bool) -> None:
        for snap in snapshots:
            rows = [{"key": k, "value": v} for k, v in snap.rows]
            doc = {"map": snap.name, "kind": snap.kind, "final": final, "rows": rows}
            self.out.write(self.dumps(doc) + "\n")


@click.command(
    context_settings={"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}
)
@click.argument("target")
@click.argument("package_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--json", "json_lines", is_flag=True, help="Print one JSON object per line.")
@click.option("--duration", type=float, metavar="S", help="Stop after S seconds.")
@click.option("--max-events", type=int, metavar="N", help="Stop after N events.")
@click.option("--interval", type=float, metavar="S",
              help="Print result maps every S seconds (default: 1 without an event stream).")
@click.option("--attach", "attach", multiple=True, metavar="PROG=TARGET",
              help="Attach PROG explicitly: uprobe:BIN:FUNC, uretprobe:BIN:FUNC, "
              "tracepoint:CAT:NAME, raw_tp:NAME, kprobe:FUNC, xdp:IFNAME, tc:IFNAME[:egress].")
@click.option("--unit", default="value", show_default=True,
              help="Label of histogram values (usecs, msecs, bytes...).")
@click.option("--allow-unsigned", is_flag=True,
              help="Run a registry package that carries no trusted signature.")
@click.option("--btf", "btf_path", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="BTF for the event types (raw .btf or an object compiled with -g), when the "
              "package has none.")
@click.option("--native", is_flag=True,
              help="Use ebpm's own event printer even when the package has a wasm userspace.")
@click.option("--allow", "allow_types", multiple=True, metavar="TYPE",
              help="Program types a wasm userspace may load beyond tracing: xdp, tc, cgroup, "
              "other, all (see docs/wasm.md).")
def run(
    target: str, package_args: tuple[str, ...], json_lines: bool, duration: float | None,
    max_events: int | None, interval: float | None, attach: tuple[str, ...], unit: str,
    allow_unsigned: bool, btf_path: str | None, native: bool, allow_types: tuple[str, ...],
) -> None:
    """Load and attach TARGET, then print its events (or maps) until Ctrl-C.

    \b
    TARGET is a registry reference (NAME[:VERSION], resolved against $EBPM_REGISTRY),
    a local .bpf.o or package directory (built by `ebpm build`), or an http(s) URL to
    a .bpf.o. Package flags follow `--`: `ebpm run opensnoop -- --pid 42`;
    `ebpm run opensnoop -- -h` lists them. A package with a WebAssembly userspace
    runs it (its arguments follow `--`) unless --native. Registry packages come
    from the store in $EBPM_HOME; with $EBPM_OFFLINE=1 nothing is fetched.
    """
    from ebpm.errors import UsageError
    from ebpm.loader.args import wants_help
    from ebpm.run import package_help, resolve_target, run_object

    args = list(package_args)
    if args and args[0] == "--":
        args = args[1:]
    targets: dict[str, str] = {}
    for item in attach:
        prog, eq, where = item.partition("=")
        if not eq or not prog or not where:
            raise UsageError(f"--attach {item!r}: expected PROG=TARGET")
        targets[prog] = where
    pkg = resolve_target(target, allow_unsigned=allow_unsigned)
    if btf_path:
        from dataclasses import replace
        from pathlib import Path

        from ebpm.run import raw_btf

        pkg = replace(pkg, btf=raw_btf(Path(btf_path).read_bytes(), where=btf_path))
    if pkg.wasm is not None and not native:
        from ebpm.run import run_wasm

        status = run_wasm(pkg, args=args, duration=duration,
                          allow_types=("tracing", *allow_types))
        if status:
            sys.exit(status)
        return
    if wants_help(args):
        click.echo(package_help(pkg))
        return
    out = sys.stdout
    if not out.isatty():
        out.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    reporter: Any = JsonReporter(out) if json_lines else TableReporter(out, unit)

    class _Status:
        def __init__(self) -> None:
            self.event = reporter.event  # no extra call per event
            self.maps = reporter.maps

        def started(self, session: Any) -> None:
            for d in session.dropped:
                used = f"; using {d.replaced_by}" if d.replaced_by else ""
                click.echo(f"ebpm: dropped {d.program} ({d.section}): {d.reason}{used}", err=True)
            import logging

            log = logging.getLogger("ebpm.run")
            for line in session.attached:
                log.info("attached %s", line)
            reporter.started(session)

    summary = run_object(
        pkg.object, pkg.config, btf=pkg.btf, args=args, duration=duration,
        max_events=max_events, interval=interval, attach=targets, reporter=_Status(),  # type: ignore[arg-type]
    )
    out.flush()
    if summary.lost:
        click.echo(f"ebpm: {summary.lost} events lost (consumer too slow)", err=True)
