"""How `ebpm run` and `ebpm logs` print a run: events as a table (`TablePrinter`) or JSON lines
(`JsonPrinter`), map snapshots, and the start and summary lines on stderr.

(Not imported by `ebpm.cli.run` at its top: a native run imports it once libbpf's load has
started.)"""

from __future__ import annotations

from ebpm.cli.exits import echo
from ebpm.run.sink import EventSink, RunStart, RunSummary

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ebpm.run.lines import Lines


__all__ = ["format_value", "start_line", "summary_line", "TablePrinter", "JsonPrinter"]


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
    if info.iterators:
        shows.append("the output of " + ", ".join(info.iterators))
    if info.events:
        shows.append("events from " + ", ".join(info.events))
    if info.results:
        shows.append("maps " + ", ".join(info.results))
    shown = f"; {' and '.join(shows)}" if shows else ""
    if info.iterators and not info.events:  # one-shots: the run ends once they are read
        until = "stops once read"
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
    if (summary.maps or summary.output) and not summary.events and not summary.lost:
        parts = []  # a package without an event stream: its maps and output are what it shows
    parts += [f"{name}: {size} bytes written" for name, size in summary.output]
    parts += [f"{name}: {rows} rows" for name, rows in summary.maps]
    return (f"ebpm: {summary.package}: {', '.join(parts)} in {summary.seconds:.1f} s "
            f"(stopped: {summary.stopped_by})")


def _names(attached: tuple[str, ...]) -> list[str]:
    return [line.partition(" -> ")[0] for line in attached]


class _Printer(EventSink):
    """What both printers share: the programs left out, on stderr, once the package runs; the
    output written out once a batch of events is over (`flush`) and after map snapshots;
    `on_start`, called once as the run gets under way (`ebpm run`: its start-up is over)."""

    out: Any
    on_start: Callable[[], None] | None = None

    def started(self, session: Any) -> None:
        for d in session.dropped:
            used = f"; using {d.replaced_by}" if d.replaced_by else ""
            echo(f"ebpm: dropped {d.program} ({d.section}): {d.reason}{used}", err=True)

    def start(self, info: RunStart) -> None:
        on_start, self.on_start = self.on_start, None
        if on_start is not None:
            on_start()
        self.show_start(info)

    def show_start(self, info: RunStart) -> None:
        """The start line, on stderr."""
        echo(start_line(info), err=True)

    def flush(self) -> None:
        self.out.flush()

    def output(self, program: str, data: bytes) -> None:
        """An iterator's output, as it wrote it (bytes to the stream's buffer, if it has one)."""
        raw = getattr(self.out, "buffer", None)
        if raw is None:
            self.out.write(data.decode(errors="replace"))
            return
        self.out.flush()
        raw.write(data)
        raw.flush()

    def finish(self, summary: RunSummary) -> None:
        echo(summary_line(summary), err=True)


class TablePrinter(_Printer):
    """Events as aligned columns under a header; maps as histograms or key/value tables."""

    def __init__(self, out: Any, unit: str | None = None, *,
                 on_start: Callable[[], None] | None = None) -> None:
        self.out = out
        self.on_start = on_start
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
        self.out.flush()


class JsonPrinter(_Printer):
    """One JSON object per line: events as they are; maps as {"map", "kind", "rows"}."""

    def __init__(self, out: Any, *, on_start: Callable[[], None] | None = None) -> None:
        import json

        self.out = out
        self.on_start = on_start
        self.dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False,
                                      default=str).encode
        self._lines: dict[str, Lines] = {}  # iterator program: its output cut into lines

    def event(self, event: dict[str, Any]) -> None:
        self.out.write(self.dumps(event) + "\n")

    def output(self, program: str, data: bytes) -> None:
        """An iterator's output, one record per line of its text (`ebpm.run.lines`: a line
        cut between two chunks is written whole, with the second; a very long one in parts)."""
        from ebpm.run.lines import Lines

        lines = self._lines.setdefault(program, Lines())
        self._records(program, lines.feed(data))

    def _records(self, program: str, pieces: list[tuple[bytes, bool]]) -> None:
        from ebpm.run.lines import record

        for text, partial in pieces:
            self.out.write(self.dumps(record(program, text, partial)) + "\n")

    def flush(self) -> None:
        for program, lines in self._lines.items():  # (a last line without its newline)
            self._records(program, lines.end())
        super().flush()

    def maps(self, snapshots: list[Any], final: bool) -> None:
        for snap in snapshots:
            rows = [{"key": k, "value": v} for k, v in snap.rows]
            doc = {"map": snap.name, "kind": snap.kind, "final": final, "rows": rows}
            if snap.unit:
                doc["unit"] = snap.unit
            self.out.write(self.dumps(doc) + "\n")
        self.out.flush()

    def show_start(self, info: RunStart) -> None:
        """The start record, a JSON line on stdout."""
        doc = {"ebpm": "start", "package": info.package, "mode": info.mode,
               "attached": _names(info.attached), "hooks": list(info.attached),
               "events": list(info.events), "results": list(info.results)}
        if info.iterators:
            doc["iterators"] = list(info.iterators)
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
        if summary.output:
            doc["output"] = dict(summary.output)
        self.out.write(self.dumps(doc) + "\n")
