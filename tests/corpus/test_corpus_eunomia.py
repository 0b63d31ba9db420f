"""eunomia-bpf packages (`package.json` as `ecc` writes it), unmodified: run by path, URL and
registry reference, pushed as ebpm packages, and exported back for ecli."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ebpm.transfer import formats
from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, ebpm_run
from tests.loader.test_loader_sources import http_dir  # noqa: F401 - fixture

pytestmark = pytest.mark.kernel
EUNOMIA = CORPUS / "eunomia-bpf"
BOOTSTRAP = EUNOMIA / "ecli-tests" / "bootstrap.json"
LOADED_NAMES.update({"handle_exec", "handle_exit", "handle_tp"})


def exec_true() -> None:
    subprocess.run(["/bin/true"], check=True)


def check_bootstrap(run) -> None:  # type: ignore[no-untyped-def]
    assert run.code == 0, run.err
    execs = [e for e in run.events if e["comm"] == "true" and not e["exit_event"]]
    assert execs, run.out
    e = execs[0]
    assert e["filename"].endswith("/true") and e["pid"] > 0 and e["ppid"] > 0
    exits = [e for e in run.events if e["comm"] == "true" and e["exit_event"]]
    assert exits and exits[0]["exit_code"] == 0


def test_package_json_by_path(kernel: None) -> None:
    run = ebpm_run(BOOTSTRAP, duration=10, max_events=60, trigger=exec_true)
    check_bootstrap(run)
    start = run.record("start")
    assert sorted(start["attached"]) == ["handle_exec", "handle_exit"]


def test_package_json_sibling_names_and_args(kernel: None, tmp_path: Path) -> None:
    """Any file name (`simple_prog_3`'s package.json, a renamed copy): the bytes decide."""
    odd = tmp_path / "whatever.data"
    shutil.copyfile(EUNOMIA / "simple_prog_3" / "package.json", odd)
    run = ebpm_run(odd, ["--const-val-1", "7"], duration=10, max_events=1, trigger=exec_true)
    assert run.code == 0, run.err
    assert set(run.events[0]) >= {"val_1", "val_2", "val_3", "val_4", "val_5", "val_6"}


def test_package_json_without_event_types_runs(kernel: None) -> None:
    """`simple.bpf.c` only calls bpf_printk (on every write: `pid_filter` 0): its trace lines
    are the events, ebpm's own writes left out (they would feed the program forever)."""
    import os

    run = ebpm_run(EUNOMIA / "github-assets" / "package.json", duration=1.5,
                   trigger=lambda: os.write(2, b""))
    assert run.code == 0, run.err
    start = run.record("start")
    assert start["attached"] == ["handle_tp"] and start["events"][0].startswith("bpf_printk")
    assert f"BPF triggered from PID {os.getpid()}." in {e["bpf_printk"] for e in run.events}
    assert run.record("summary")["events"] == len(run.events)


def test_package_json_by_url(kernel: None, http_dir, monkeypatch) -> None:  # noqa: F811
    base, root = http_dir
    shutil.copyfile(BOOTSTRAP, root / "package.json")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    run = ebpm_run(f"{base}/package.json", duration=10, max_events=60, trigger=exec_true,
                   options=["--allow-unsigned"])
    check_bootstrap(run)


def test_push_package_json_then_run_by_reference(kernel: None, registry) -> None:
    ref = f"{registry.host}/corpus/bootstrap:1.0.0"
    ebpm_cli("push", str(BOOTSTRAP), ref)
    inspected = json.loads(ebpm_cli("inspect", ref, "--json").stdout)
    config = inspected["config"]
    assert config["name"] == "bootstrap" and config["version"] == "1.0.0"
    assert [(e["map"], e["type"]) for e in config["events"]] == [("rb", "event")]
    assert [a["name"] for a in config["args"]] == ["min_duration_ns"]
    run = ebpm_run(ref, duration=10, max_events=60, trigger=exec_true,
                   options=["--allow-unsigned"])
    check_bootstrap(run)


@pytest.mark.parametrize("name", ["simple_prog_5", "simple_prog_6"])
def test_push_network_package_jsons(registry, name: str) -> None:
    ref = f"{registry.host}/corpus/{name.replace('_', '-')}:0.1.0"
    ebpm_cli("push", str(EUNOMIA / name / "package.json"), ref)
    config = json.loads(ebpm_cli("inspect", ref, "--json").stdout)["config"]
    assert config["programs"][0]["type"] in ("xdp", "tc")


def test_export_eunomia_round_trip(kernel: None, registry, tmp_path: Path) -> None:
    """push package.json -> ebpm package -> `ebpm export --format eunomia` -> runs again."""
    ref = f"{registry.host}/corpus/bootstrap-export:1.0.0"
    ebpm_cli("push", str(BOOTSTRAP), ref)
    out = tmp_path / "exported.json"
    ebpm_cli("export", "--allow-unsigned", ref, "--format", "eunomia", "-o", str(out))
    original = json.loads(BOOTSTRAP.read_bytes())
    exported = json.loads(out.read_bytes())
    assert exported["bpf_object_size"] == original["bpf_object_size"]
    assert formats.eunomia_object(exported, where="x") == formats.eunomia_object(original,
                                                                                  where="y")
    assert exported["meta"]["export_types"][0]["name"] == "event"
    assert {p["name"] for p in exported["meta"]["bpf_skel"]["progs"]} == {"handle_exec",
                                                                          "handle_exit"}
    check_bootstrap(ebpm_run(out, duration=10, max_events=60, trigger=exec_true))
