"""`ebpm run REF|PATH|URL [-- ARGS]`: load a package, print its events and maps until stopped."""

from __future__ import annotations

import sys

from ebpm.cli.exits import echo, setup_logging
from ebpm.cli.params import (
    AGENT_OPTIONS,
    REGISTRY_OPTIONS,
    Argument,
    Choice,
    Command,
    File,
    Float,
    Int,
    Option,
)
from ebpm.run.sink import EventSink, RunStart, RunSummary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["RUN", "run", "format_value", "TablePrinter", "JsonPrinter"]


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


def _is_terminal(out: Any) -> bool:
    """Bold only on a terminal that renders it (not TERM=dumb)."""
    import os

    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM", "") != "dumb"


def start_line(info: RunStart) -> str:
    """One line on stderr: what runs, attached where, and how it stops."""
    until = f"stops after {info.duration:g} s or Ctrl-C" if info.duration else "Ctrl-C to stop"
    if info.mode == "wasm":
        allowed = ", ".join(info.allow_types) or "tracing"
        return f"ebpm: {info.package}: running its wasm module (may load: {allowed}); {until}"
    where = f" (in the agent at {info.agent} as {info.program_id})" if info.agent else ""
    hooks = ", ".join(_hook(line) for line in info.attached) or "nothing"
    shows = []
    if info.events:
        shows.append("events from " + ", ".join(info.events))
    if info.results:
        shows.append("maps " + ", ".join(info.results))
    shown = f"; {' and '.join(shows)}" if shows else ""
    return f"ebpm: {info.package}{where}: attached {hooks}{shown}; {until}"


def _hook(line: str) -> str:
    program, _, hook = line.partition(" -> ")
    return f"{program} ({hook})" if hook else program


def summary_line(summary: RunSummary) -> str:
    """One line on stderr at the end: events printed, lost, per-map rows, why it stopped."""
    if summary.hard_stopped:
        return (f"ebpm: {summary.package}: the wasm module did not stop when asked (it ignores "
                f"-EINTR); ended by the hard stop after {summary.seconds:.1f} s")
    if summary.mode == "wasm":
        return (f"ebpm: {summary.package}: exited with status {summary.status} after "
                f"{summary.seconds:.1f} s")
    parts = [f"{summary.events} events", f"{summary.lost} lost"]
    if summary.maps and not summary.events and not summary.lost:
        parts = []  # a package without an event stream: its maps are what it shows
    parts += [f"{name}: {rows} rows" for name, rows in summary.maps]
    return (f"ebpm: {summary.package}: {', '.join(parts)} in {summary.seconds:.1f} s "
            f"(stopped: {summary.stopped_by})")


def _names(attached: tuple[str, ...]) -> list[str]:
    return [line.partition(" -> ")[0] for line in attached]


class _Printer(EventSink):
    """What both printers share: the programs left out, on stderr, once the package runs."""

    def started(self, session: Any) -> None:
        for d in session.dropped:
            used = f"; using {d.replaced_by}" if d.replaced_by else ""
            echo(f"ebpm: dropped {d.program} ({d.section}): {d.reason}{used}", err=True)

    def start(self, info: RunStart) -> None:
        echo(start_line(info), err=True)

    def finish(self, summary: RunSummary) -> None:
        echo(summary_line(summary), err=True)


class TablePrinter(_Printer):
    """Events as aligned columns under a header; maps as histograms or key/value tables."""

    def __init__(self, out: Any, unit: str | None = None) -> None:
        self.out = out
        self.unit = unit  # --unit; else each histogram's own (declared or inferred)
        self.widths: list[int] = []
        self.fields: tuple[str, ...] = ()
        self.type_widths: tuple[int, ...] = ()
        self.bold = _is_terminal(out)

    def started(self, session: Any) -> None:
        super().started(session)
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
        line = " ".join(cells).rstrip()
        self.out.write(f"\x1b[1m{line}\x1b[0m\n" if self.bold else line + "\n")

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
                    unit = self.unit or snap.unit or "value"
                    lines.extend(log2_hist_lines(value["slots"], unit))
                if not snap.rows:
                    lines.append(f"{snap.name}: (empty)")
            else:
                lines.append(f"{snap.name}:")
                for key, value in snap.rows:
                    lines.append(f"  {format_value(key):<24} {format_value(value)}")
        lines.append("")
        self.out.write("\n".join(lines) + "\n")


class JsonPrinter(_Printer):
    """One JSON object per line: events as they are; maps as {"map", "kind", "rows"}."""

    def __init__(self, out: Any) -> None:
        import json

        self.out = out
        self.dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                      default=str).encode

    def event(self, event: dict[str, Any]) -> None:
        self.out.write(self.dumps(event) + "\n")

    def maps(self, snapshots: list[Any], final: bool) -> None:
        for snap in snapshots:
            rows = [{"key": k, "value": v} for k, v in snap.rows]
            doc = {"map": snap.name, "kind": snap.kind, "final": final, "rows": rows}
            if snap.unit:
                doc["unit"] = snap.unit
            self.out.write(self.dumps(doc) + "\n")

    def start(self, info: RunStart) -> None:
        doc = {"ebpm": "start", "package": info.package, "mode": info.mode,
               "attached": _names(info.attached), "hooks": list(info.attached),
               "events": list(info.events), "results": list(info.results)}
        if info.agent:
            doc.update(agent=info.agent, id=info.program_id)
        self.out.write(self.dumps(doc) + "\n")
        self.out.flush()

    def finish(self, summary: RunSummary) -> None:
        doc = {"ebpm": "summary", "package": summary.package, "events": summary.events,
               "lost": summary.lost, "seconds": round(summary.seconds, 3),
               "stopped_by": summary.stopped_by, "maps": dict(summary.maps),
               "unit": summary.unit, "status": summary.status,
               "hard_stopped": summary.hard_stopped}
        self.out.write(self.dumps(doc) + "\n")


# the program types a wasm guest may be allowed (ebpm.loader.wasm.policy.CATEGORIES, written
# out so that parsing the command line imports no wasm code; a test keeps them equal)
WASM_CATEGORIES = ("tracing", "xdp", "tc", "cgroup", "other", "all")


def run(
    target: str, package_args: tuple[str, ...], json_lines: bool, duration: float | None,
    max_events: int | None, interval: float | None, attach: tuple[str, ...], unit: str | None,
    allow_unsigned: bool, btf_path: str | None, native: bool, allow_types: tuple[str, ...],
    metrics: str | None, detach: bool, persist: bool, agent: str | None,
    token_file: str | None, insecure: bool, ca_file: str | None,
) -> None:
    """Load and attach TARGET, then print its events (or maps) until Ctrl-C.

    \b
    TARGET is a registry reference (NAME[:VERSION], resolved against $EBPM_REGISTRY),
    a local .bpf.o or package directory (built by `ebpm build`), or an http(s) URL to
    a .bpf.o. Package flags follow `--`: `ebpm run opensnoop -- --pid 42`;
    `ebpm run opensnoop -- -h` lists them. A package with a WebAssembly userspace
    runs it (its arguments follow `--`) unless --native. Registry packages come
    from the store in $EBPM_HOME; with $EBPM_OFFLINE=1 nothing is fetched.
    With --agent ADDRESS the agent (`ebpm serve`) runs it and this prints its
    events until the run ends, then stops it; --detach hands it over and returns.
    """
    args = list(package_args)
    if args and args[0] == "--":
        args = args[1:]
    if detach:
        from ebpm import interrupts

        interrupts.release()  # no run here to stop: a Ctrl-C is a KeyboardInterrupt again
        _detach(target, args, allow_unsigned=allow_unsigned, persist=persist, agent=agent,
                token_file=token_file, refused={
                    "--json": json_lines, "--duration": duration is not None,
                    "--max-events": max_events is not None, "--interval": interval is not None,
                    "--attach": bool(attach), "--btf": bool(btf_path), "--native": native,
                    "--allow": bool(allow_types), "--metrics": bool(metrics)})
        return
    if persist:
        from ebpm.errors import UsageError

        raise UsageError("--persist goes with --detach", hint="ebpm run --detach --persist REF")
    if agent and not _asks_help(args):  # `-- -h`: the flags are listed here, below
        _attached(target, args, json_lines=json_lines, duration=duration, max_events=max_events,
                  unit=unit, allow_unsigned=allow_unsigned, agent=agent, token_file=token_file,
                  refused={"--attach": bool(attach), "--btf": bool(btf_path),
                           "--native": native, "--allow": bool(allow_types),
                           "--metrics": bool(metrics), "--interval": interval is not None})
        return
    from ebpm.run import help_for, open_target, parse_attach, run_package, signals_stop_runs

    setup_logging(0)  # warnings as `name: message` (the full CLI has set up -v already)
    targets = parse_attach(attach)
    if allow_unsigned:
        echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    from ebpm.cli.params import registry_access
    from ebpm.run.source import is_local, shadowing_path

    shadowed = shadowing_path(target)
    if shadowed:
        echo(f"ebpm: running the local {target!r} (./{target}); "
                   f"the registry package is {shadowed}", err=True)
    with signals_stop_runs():  # from here a signal is a flag, never an exception mid-load
        # registry settings only for what comes from a registry or URL: a local run reads
        # none of them (nor imports what they need)
        access = None if is_local(target) else registry_access(insecure=insecure,
                                                               ca_file=ca_file)
        pkg = open_target(target, allow_unsigned=allow_unsigned, btf=btf_path, access=access)
        text = help_for(pkg, args, native=native)
        if text is not None:
            echo(text)
            return
        if json_lines and pkg.wasm is not None and not native:
            from ebpm.errors import UsageError

            raise UsageError("--json: the package runs its own WebAssembly userspace, which "
                             "prints its own output", hint="add --native to print its events "
                             "with ebpm's printer (as JSON lines with --json)")
        out = sys.stdout
        if not out.isatty():
            out.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        shown: JsonPrinter | TablePrinter = (
            JsonPrinter(out) if json_lines else TablePrinter(out, unit))
        printer: EventSink = shown
        server = None
        if metrics:
            from ebpm.errors import UsageError
            from ebpm.serve.metrics import AgentCollector, RunMetrics, serve_metrics

            if pkg.wasm is not None and not native:
                raise UsageError("--metrics: the package runs its own WebAssembly userspace",
                                 hint="add --native to run it with ebpm's loader and metrics")
            config = pkg.config
            tap = RunMetrics(printer, package=config.name, version=config.version,
                             rules=config.metrics, interval=interval)
            server = serve_metrics(metrics, AgentCollector(tap.figures))
            printer = tap
            echo(f"ebpm: metrics at http://{metrics}/metrics", err=True)
        try:
            summary = run_package(
                pkg, args=args, native=native, allow_types=allow_types, duration=duration,
                max_events=max_events, interval=interval, attach=targets, sink=printer,
            )
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
        out.flush()
        shown.finish(summary)
        out.flush()
    if summary.status:
        sys.exit(summary.status)


def _asks_help(args: list[str]) -> bool:
    from ebpm.loader.args import wants_help

    return wants_help(args)


def _attached(target: str, args: list[str], *, json_lines: bool, duration: float | None,
              max_events: int | None, unit: str | None, allow_unsigned: bool, agent: str,
              token_file: str | None, refused: dict[str, bool]) -> None:
    """`run --agent ADDRESS` without --detach: the agent runs TARGET, this prints its events
    until the run ends, then the agent stops it (ebpm.serve.attached)."""
    from ebpm import interrupts
    from ebpm.errors import UsageError

    given = [flag for flag, on in refused.items() if on]
    if given:
        raise UsageError(f"--agent: {given[0]} is for a run in this process",
                         hint="leave out --agent (and unset EBPM_AGENT) to run it here")
    from ebpm.cli.params import client_from
    from ebpm.serve.attached import run_in_agent

    interrupts.release()  # run_in_agent stops the run on Ctrl-C from here
    out = sys.stdout
    if not out.isatty():
        out.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    shown: JsonPrinter | TablePrinter = JsonPrinter(out) if json_lines else TablePrinter(out, unit)
    summary = run_in_agent(client_from(agent, token_file), target, args=args,
                           allow_unsigned=allow_unsigned, duration=duration,
                           max_events=max_events, sink=shown)
    out.flush()
    shown.finish(summary)
    out.flush()


def _detach(target: str, args: list[str], *, allow_unsigned: bool, persist: bool,
            agent: str | None, token_file: str | None, refused: dict[str, bool]) -> None:
    """`run --detach`: the running agent pulls, loads and attaches TARGET; print its id."""
    from ebpm.errors import UsageError

    given = [flag for flag, on in refused.items() if on]
    if given:
        raise UsageError(f"--detach: {given[0]} is not for a detached program",
                         hint="read its events with `ebpm logs ID -f`")
    from ebpm.cli.params import client_from

    doc = client_from(agent, token_file).call("POST", "/v1/programs", {
        "ref": target, "args": args, "allow_unsigned": allow_unsigned, "persist": persist})
    echo(doc["id"])
    attached = ", ".join(doc.get("attached", []))
    echo(f"ebpm: {doc['ref']} ({doc['digest'][:19]}) runs in the agent as {doc['id']}"
               f"{': ' + attached if attached else ''}", err=True)


RUN = Command("run", run, signals=True, help=run.__doc__ or "", params=[
    Argument("target"),
    Argument("package_args", rest=True),
    Option("--json", dest="json_lines", flag=True, help="Print one JSON object per line."),
    Option("--duration", type=Float(0), metavar="S", help="Stop after S seconds."),
    Option("--max-events", type=Int(1), metavar="N", help="Stop after N events."),
    Option("--interval", type=Float(0), metavar="S",
           help="Print result maps every S seconds (default: 1 without an event stream)."),
    Option("--attach", dest="attach", multiple=True, metavar="PROG=TARGET",
           help="Attach PROG explicitly: uprobe:BIN:FUNC, uretprobe:BIN:FUNC, "
           "tracepoint:CAT:NAME, raw_tp:NAME, kprobe:FUNC, xdp:IFNAME, tc:IFNAME[:egress]."),
    Option("--unit", metavar="UNIT",
           help="Label of histogram values (usecs, msecs, bytes...); default: the package's "
           "[display] unit, else 'value'."),
    Option("--allow-unsigned", flag=True,
           help="Run a package that carries no trusted signature (a registry package, or an "
           "object by URL without a #sha256= pin)."),
    Option("--btf", dest="btf_path", type=File(), metavar="FILE",
           help="BTF for the event types (raw .btf or an object compiled with -g), when the "
           "package has none."),
    Option("--native", flag=True,
           help="Use ebpm's own event printer even when the package has a wasm userspace."),
    Option("--allow", dest="allow_types", multiple=True, type=Choice(WASM_CATEGORIES),
           help="Program types a wasm userspace may load beyond tracing: xdp, tc, cgroup, "
           "other, all (see docs/wasm.md)."),
    Option("--metrics", dest="metrics", metavar="HOST:PORT",
           help="Serve Prometheus metrics of this run at http://HOST:PORT/metrics "
           "(loopback), e.g. 127.0.0.1:9100."),
    Option("--detach", flag=True,
           help="Hand the package to the running agent (`ebpm serve`), print its id and "
           "return; see `ebpm ps`, `ebpm logs`, `ebpm stop`."),
    Option("--persist", flag=True,
           help="With --detach: the program outlives the agent (pinned in bpffs)."),
    *AGENT_OPTIONS,
    *REGISTRY_OPTIONS,  # (not registry=True: the access is made only for a registry/URL)
])
