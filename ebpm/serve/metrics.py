"""Prometheus metrics: per-program figures and values read from result maps.

Per program: events, lost, readers' losses and load time. Map values follow the package's
declared mapping (`[metrics.MAP]` in ebpm.toml: name, type, help, labels) and, where nothing is
declared, these conventions:

- a log2 histogram map (values with `slots`) becomes a Prometheus histogram whose buckets are
  the slots' upper bounds (`le` = 2^(i+1)-1); string fields of the value and the key's fields
  become labels;
- a counter map becomes counters: a struct key's fields become labels (a scalar key the label
  `key`), an integer value one counter, a struct value one counter per numeric field.

Label cardinality is capped per metric (`max_series`): the largest series are kept, the rest
dropped, and `ebpm_metrics_series_dropped` says how many, beside `ebpm_metrics_series_cap`.

The agent scrapes its registry (`ebpm.serve.server.figures_of`); `ebpm run --metrics` scrapes
its one foreground run through `RunMetrics`, served by `serve_metrics`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ebpm.errors import UsageError
from ebpm.package import MetricSpec, metric_specs
from ebpm.run.sink import EventSink

__all__ = [
    "DEFAULT_MAX_SERIES",
    "MetricRule",
    "ProgramFigures",
    "parse_rules",
    "map_families",
    "AgentCollector",
    "exposition",
    "CONTENT_TYPE",
    "RunMetrics",
    "serve_metrics",
]

DEFAULT_MAX_SERIES = 500
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")


MetricRule = MetricSpec  # `[metrics.MAP]` of ebpm.toml, carried in the package config


def parse_rules(table: Mapping[str, Any], *, where: str = "ebpm.toml [metrics]") -> tuple[
        MetricSpec, ...]:
    """`{map: {name, type, help, labels, value}}` as ebpm.toml declares it, checked."""
    return metric_specs(dict(table), where=where)


@dataclass(frozen=True)
class ProgramFigures:
    """What a scrape reads about one program."""

    id: str
    package: str
    version: str
    events: int
    lost: int
    reader_lost: int = 0
    readers: int = 0
    load_seconds: float = 0.0
    maps: Sequence[Any] = ()  # ebpm.loader.session.MapSnapshot
    rules: Sequence[MetricRule] = ()
    status: str = "running"
    digest: str = ""


def metric_name(*parts: str) -> str:
    name = "_".join(p for p in parts if p)
    name = _NAME_BAD.sub("_", name)
    return name if not name[:1].isdigit() else f"_{name}"


def _label_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return " ".join(v for v in value if v)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _key_labels(key: Any, several: bool) -> dict[str, str]:
    if isinstance(key, dict):
        return {metric_name(k): _label_text(v) for k, v in key.items()}
    return {"key": _label_text(key)} if several else {}


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class _Family:
    name: str
    kind: str  # counter, gauge, histogram
    help: str
    series: dict[tuple[tuple[str, str], ...], Any] = field(default_factory=dict)

    def add(self, labels: dict[str, str], value: Any) -> None:
        key = tuple(sorted(labels.items()))
        if self.kind == "histogram":
            prev = self.series.get(key)
            if prev is None:
                self.series[key] = list(value)
            else:
                width = max(len(prev), len(value))
                self.series[key] = [
                    (prev[i] if i < len(prev) else 0) + (value[i] if i < len(value) else 0)
                    for i in range(width)]
        else:
            self.series[key] = self.series.get(key, 0) + value

    def weight(self, value: Any) -> float:
        return float(sum(value)) if self.kind == "histogram" else float(value)


def _filter(labels: dict[str, str], keep: tuple[str, ...] | None) -> dict[str, str]:
    return labels if keep is None else {k: v for k, v in labels.items() if k in keep}


def map_families(figures: ProgramFigures, *, max_series: int = DEFAULT_MAX_SERIES) -> tuple[
        list[_Family], dict[str, int]]:
    """The metric families of one program's maps, and per family the series dropped by the
    cap."""
    rules = {r.map: r for r in figures.rules}
    families: dict[str, _Family] = {}
    base = {"id": figures.id, "package": figures.package}
    for snap in figures.maps:
        rule = rules.get(snap.name, MetricRule(snap.name))
        stem = rule.name or metric_name("ebpm", figures.package, snap.name)
        several = len(snap.rows) > 1
        if snap.kind == "hist" and rule.type in ("", "histogram"):
            fam = families.setdefault(stem, _Family(stem, "histogram", rule.help or (
                f"log2 histogram of map {snap.name} ({figures.package})")))
            for key, value in snap.rows:
                labels = _key_labels(key, several)
                labels.update({metric_name(k): _label_text(v) for k, v in value.items()
                               if k != "slots" and isinstance(v, str) and v})
                fam.add({**base, **_filter(labels, rule.labels)}, value.get("slots", []))
            continue
        kind = rule.type if rule.type in ("counter", "gauge") else "counter"
        for key, value in snap.rows:
            labels = _key_labels(key, several)
            if isinstance(value, dict):
                labels.update({metric_name(k): _label_text(v) for k, v in value.items()
                               if isinstance(v, str) and v})
                fields = [(k, v) for k, v in value.items() if _numeric(v)
                          and (not rule.value or k == rule.value)]
                for fname, v in fields:
                    name = stem if rule.value else metric_name(stem, fname)
                    fam = families.setdefault(name, _Family(name, kind, rule.help or (
                        f"field {fname} of map {snap.name} ({figures.package})")))
                    fam.add({**base, **_filter(labels, rule.labels)}, v)
            elif _numeric(value):
                fam = families.setdefault(stem, _Family(stem, kind, rule.help or (
                    f"values of map {snap.name} ({figures.package})")))
                fam.add({**base, **_filter(labels, rule.labels)}, value)
    dropped: dict[str, int] = {}
    for fam in families.values():
        if len(fam.series) > max_series:
            ranked = sorted(fam.series.items(), key=lambda kv: -fam.weight(kv[1]))
            dropped[fam.name] = len(ranked) - max_series
            fam.series = dict(ranked[:max_series])
    return list(families.values()), dropped


def _cumulative(slots: Sequence[int]) -> list[tuple[str, float]]:
    last = max((i for i, n in enumerate(slots) if n), default=-1)
    out: list[tuple[str, float]] = []
    total = 0
    for i in range(last + 1):
        total += int(slots[i])
        out.append((str((1 << (i + 1)) - 1), float(total)))
    out.append(("+Inf", float(total)))
    return out


class AgentCollector:
    """A prometheus_client collector reading `figures()` at every scrape."""

    def __init__(self, figures: Callable[[], Iterable[ProgramFigures]], *,
                 max_series: int = DEFAULT_MAX_SERIES) -> None:
        self.figures = figures
        self.max_series = max_series

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = ["id", "package"]
        info = GaugeMetricFamily("ebpm_program_info", "Programs this agent runs (value 1).",
                                 labels=[*labels, "version", "digest", "status"])
        events = CounterMetricFamily("ebpm_program_events", "Events the program delivered.",
                                     labels=labels)
        lost = CounterMetricFamily("ebpm_program_lost",
                                   "Events lost in the kernel (perf buffer overruns).",
                                   labels=labels)
        reader_lost = CounterMetricFamily(
            "ebpm_program_reader_lost", "Events slow stream readers lost (each its own).",
            labels=labels)
        readers = GaugeMetricFamily("ebpm_program_readers", "Event streams open now.",
                                    labels=labels)
        load = GaugeMetricFamily("ebpm_program_load_seconds",
                                 "Seconds from load start to attached.", labels=labels)
        cap = GaugeMetricFamily("ebpm_metrics_series_cap",
                                "Most series one map-derived metric may have per program.")
        cap.add_metric([], self.max_series)
        dropped_fam = GaugeMetricFamily(
            "ebpm_metrics_series_dropped",
            "Series of a map-derived metric left out by the cap at this scrape.",
            labels=[*labels, "metric"])
        map_out: dict[str, Any] = {}
        for fig in self.figures():
            lv = [fig.id, fig.package]
            info.add_metric([*lv, fig.version, fig.digest, fig.status], 1)
            events.add_metric(lv, fig.events)
            lost.add_metric(lv, fig.lost)
            reader_lost.add_metric(lv, fig.reader_lost)
            readers.add_metric(lv, fig.readers)
            load.add_metric(lv, fig.load_seconds)
            families, dropped = map_families(fig, max_series=self.max_series)
            for metric, count in dropped.items():
                dropped_fam.add_metric([*lv, metric], count)
            for fam in families:
                names = sorted({k for key in fam.series for k, _ in key})
                out = map_out.get(fam.name)
                if out is None:
                    cls = {"histogram": HistogramMetricFamily, "gauge": GaugeMetricFamily,
                           "counter": CounterMetricFamily}[fam.kind]
                    out = map_out[fam.name] = (cls(fam.name, fam.help, labels=names), names)
                metric, known = out
                for key, value in fam.series.items():
                    d = dict(key)
                    values = [d.get(n, "") for n in known]
                    if fam.kind == "histogram":
                        metric.add_metric(values, _cumulative(value), None)
                    else:
                        metric.add_metric(values, value)
        yield from (info, events, lost, reader_lost, readers, load, cap, dropped_fam)
        for metric, _ in map_out.values():
            yield metric


def exposition(collector: AgentCollector) -> bytes:
    """The Prometheus text format of `collector` (and this process's own figures)."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    return generate_latest(registry)


class RunMetrics(EventSink):
    """`ebpm run --metrics`: the figures of one foreground run, wrapping its printer (an
    EventSink). Maps that the run empties every interval are added up here, so that counters
    only grow; maps it never empties are read live at each scrape."""

    def __init__(self, inner: Any, *, package: str, version: str,
                 rules: Sequence[MetricRule] = (), interval: float | None = None) -> None:
        import threading
        import time

        self.inner = inner
        self.event = inner.event  # type: ignore[method-assign]  # no extra call per event
        self.flush = getattr(inner, "flush", self.flush)  # type: ignore[method-assign]
        self.package = package
        self.version = version
        self.rules = tuple(rules)
        self.interval = interval
        self.session: Any = None
        self.begin = time.monotonic()
        self.load_seconds = 0.0
        self.totals: dict[str, Any] = {}  # map -> {key: value} added up (emptied maps)
        self.kinds: dict[str, str] = {}
        self.cumulative = False
        self.closing = False
        self.lock = threading.Lock()

    def start(self, info: Any) -> None:
        from ebpm.run.sink import announce

        announce(self.inner, info)

    def started(self, session: Any) -> None:
        import time

        self.load_seconds = time.monotonic() - self.begin
        self.cumulative = bool(self.interval) or not session.event_maps()
        self.session = session
        self.inner.started(session)

    def maps(self, snapshots: list[Any], final: bool) -> None:
        with self.lock:
            if final:
                self.closing = True
            if self.cumulative:
                for snap in snapshots:
                    self.kinds[snap.name] = snap.kind
                    rows = self.totals.setdefault(snap.name, {})
                    for key, value in snap.rows:
                        k = json.dumps(key, sort_keys=True, default=str)
                        rows[k] = (key, _add(rows[k][1], value) if k in rows else value)
        self.inner.maps(snapshots, final)

    def _snapshots(self) -> list[Any]:
        from ebpm.loader.snapshots import MapSnapshot

        with self.lock:
            if self.cumulative:
                return [MapSnapshot(name, self.kinds[name], tuple(rows.values()))
                        for name, rows in self.totals.items()]
            if self.closing or self.session is None:
                return []
            return list(self.session.snapshot_maps())

    def figures(self) -> list[ProgramFigures]:
        session = self.session
        if session is None:
            return []
        return [ProgramFigures(id="run", package=self.package, version=self.version,
                               events=session.events_seen, lost=session.lost,
                               load_seconds=self.load_seconds, maps=self._snapshots(),
                               rules=self.rules)]


def _add(a: Any, b: Any) -> Any:
    """Counts of two intervals added (ints, lists of ints, dicts of those); others: the newer."""
    if isinstance(a, bool) or isinstance(b, bool):
        return b
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, list) and isinstance(b, list):
        width = max(len(a), len(b))
        return [_add(a[i] if i < len(a) else 0, b[i] if i < len(b) else 0) for i in range(width)]
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(a[k], v) if k in a else v for k, v in b.items()}
    return b


def metrics_endpoint(address: str) -> Any:
    """`--metrics HOST:PORT` read and checked (a loopback address; `ebpm run` checks it before
    it loads anything): its `ebpm.serve.endpoint.Endpoint`."""
    from ebpm.serve.endpoint import is_loopback, parse_endpoint

    hint = "e.g. 127.0.0.1:9100; for scrapes from elsewhere run `ebpm serve`"
    try:
        ep = parse_endpoint(address)
    except UsageError:
        ep = None
    if ep is None or ep.is_unix or ep.tls or not ep.port:
        raise UsageError(f"--metrics {address}: expected HOST:PORT such as 127.0.0.1:9100",
                         hint=hint)
    if not is_loopback(ep.host):
        raise UsageError(f"--metrics {address}: expected a loopback HOST:PORT", hint=hint)
    return ep


def serve_metrics(address: str, collector: AgentCollector) -> Any:
    """Expose `collector` at http://ADDRESS/metrics (loopback only) from a background thread;
    returns the server (call .shutdown() to stop it)."""
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

    ep = metrics_endpoint(address)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(ep.port, addr=ep.host, registry=registry)
    except OSError as err:
        raise UsageError(f"--metrics {address}: {err.strerror}",
                         hint="pick another port") from err
    return server
