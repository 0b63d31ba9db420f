"""Map-derived metrics: the conventions, a declared mapping, and the cardinality cap, in the
Prometheus text format as prometheus_client writes it."""

from __future__ import annotations

import pytest

from ebpm.errors import ManifestError
from ebpm.loader.snapshots import MapSnapshot
from ebpm.serve.metrics import AgentCollector, ProgramFigures, exposition, parse_rules


def _scrape(*figures: ProgramFigures, max_series: int = 500) -> str:
    return exposition(AgentCollector(lambda: figures, max_series=max_series)).decode()


def _fig(maps: list[MapSnapshot], **kw: object) -> ProgramFigures:
    base: dict[str, object] = {"id": "abc123", "package": "demo", "version": "1.0.0",
                               "events": 42, "lost": 3, "reader_lost": 5, "readers": 2,
                               "load_seconds": 0.012, "maps": maps}
    base.update(kw)
    return ProgramFigures(**base)  # type: ignore[arg-type]


def test_program_figures_are_exported() -> None:
    text = _scrape(_fig([]))
    assert 'ebpm_program_events_total{id="abc123",package="demo"} 42.0' in text
    assert 'ebpm_program_lost_total{id="abc123",package="demo"} 3.0' in text
    assert 'ebpm_program_reader_lost_total{id="abc123",package="demo"} 5.0' in text
    assert 'ebpm_program_load_seconds{id="abc123",package="demo"} 0.012' in text
    assert "ebpm_metrics_series_cap 500.0" in text


def test_histogram_map_becomes_a_prometheus_histogram() -> None:
    hist = MapSnapshot("latency", "hist", ((0, {"slots": [1, 0, 4, 2]}),))
    text = _scrape(_fig([hist]))
    assert "# TYPE ebpm_demo_latency histogram" in text
    for le, count in (("1", 1.0), ("3", 1.0), ("7", 5.0), ("15", 7.0), ("+Inf", 7.0)):
        assert f'ebpm_demo_latency_bucket{{id="abc123",le="{le}",package="demo"}} {count}' in text


def test_counter_map_keyed_by_a_struct_is_labelled_by_its_fields() -> None:
    rows = ((({"pid": 7, "comm": "bash"}), 10), ({"pid": 8, "comm": "sshd"}, 2))
    counts = MapSnapshot("counts", "table", rows)
    struct_values = MapSnapshot("stats", "table", ((3, {"bytes": 100, "packets": 2}),
                                                   (4, {"bytes": 50, "packets": 1})))
    text = _scrape(_fig([counts, struct_values]))
    assert "# TYPE ebpm_demo_counts_total counter" in text
    assert 'ebpm_demo_counts_total{comm="bash",id="abc123",package="demo",pid="7"} 10.0' in text
    assert 'ebpm_demo_stats_bytes_total{id="abc123",key="3",package="demo"} 100.0' in text
    assert 'ebpm_demo_stats_packets_total{id="abc123",key="4",package="demo"} 1.0' in text


def test_declared_mapping_renames_and_aggregates_labels() -> None:
    rules = parse_rules({"counts": {"name": "demo_calls", "type": "counter",
                                    "help": "Calls per command", "labels": ["comm"]}})
    rows = (({"pid": 7, "comm": "bash"}, 10), ({"pid": 9, "comm": "bash"}, 5),
            ({"pid": 8, "comm": "sshd"}, 2))
    text = _scrape(_fig([MapSnapshot("counts", "table", rows)], rules=rules))
    assert "# HELP demo_calls_total Calls per command" in text
    assert 'demo_calls_total{comm="bash",id="abc123",package="demo"} 15.0' in text
    assert 'demo_calls_total{comm="sshd",id="abc123",package="demo"} 2.0' in text
    assert "pid=" not in text.split("demo_calls")[1]


def test_cardinality_is_capped_and_the_cap_reported() -> None:
    rows = tuple(({"pid": i}, i) for i in range(1, 21))
    text = _scrape(_fig([MapSnapshot("counts", "table", rows)]), max_series=5)
    series = [ln for ln in text.splitlines() if ln.startswith("ebpm_demo_counts_total{")]
    assert len(series) == 5
    assert {ln.split('pid="')[1].split('"')[0] for ln in series} == {"16", "17", "18", "19", "20"}
    assert "ebpm_metrics_series_cap 5.0" in text
    assert ('ebpm_metrics_series_dropped{id="abc123",metric="ebpm_demo_counts",'
            'package="demo"} 15.0') in text


@pytest.mark.parametrize("table,message", [
    ({"m": {"type": "summary"}}, "type 'summary' is not one of"),
    ({"m": {"name": "9bad"}}, "is not a Prometheus metric name"),
    ({"m": {"labels": "comm"}}, "labels must be a list"),
    ({"m": {"nmae": "x"}}, "unknown key(s) nmae"),
])
def test_bad_declarations_are_refused(table: dict[str, object], message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_rules(table)
    assert message in info.value.message


def test_declared_mapping_travels_in_the_package_config(serve_packages) -> None:  # type: ignore[no-untyped-def]
    import json

    from ebpm.package import BUILD_DIR, CONFIG_FILE, MetricSpec, PackageConfig

    raw = (serve_packages("svcprobe") / BUILD_DIR / CONFIG_FILE).read_bytes()
    config = PackageConfig.from_json(raw)
    assert config.metrics == (MetricSpec("call_counts", "svcprobe_calls", "counter",
                                         "getpgid calls per command", ("comm",)),)
    assert config.to_json() == raw  # the canonical bytes round-trip
    bare = PackageConfig.from_json(
        (serve_packages("badprobe") / BUILD_DIR / CONFIG_FILE).read_bytes())
    assert bare.metrics == () and "metrics" not in json.loads(bare.to_json())


def test_a_mapping_of_a_missing_map_fails_the_build(tmp_path, vmlinux_h) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from ebpm.build import build
    from tests.serve.conftest import SERVE_BPF

    pkg = tmp_path / "svcprobe"
    shutil.copytree(SERVE_BPF / "svcprobe", pkg)
    toml = pkg / "ebpm.toml"
    toml.write_text(toml.read_text().replace("[metrics.call_counts]", "[metrics.callz]"))
    with pytest.raises(ManifestError) as info:
        build(pkg, vmlinux_h=vmlinux_h)
    assert "[metrics.callz]: the object has no map 'callz'" in info.value.message
