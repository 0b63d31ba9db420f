"""libbpf-bootstrap's C examples, unmodified, built as a user would (`ebpm build` with a
three-line ebpm.toml), run with `ebpm run --json`. The ones needing kprobes, fentry, lsm, USDT
or their own userspace binary (uprobe, usdt, profile, sockfilter) cannot run on this kernel or
without that userspace; tc needs an interface of its own (run in a fresh network namespace)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, ebpm_run, package_dir

pytestmark = pytest.mark.kernel
SRC = CORPUS / "libbpf-bootstrap"


def build(name: str, root: Path, vmlinux: Path, header: str = "") -> Path:
    files = [SRC / f"{name}.bpf.c"] + ([SRC / header] if header else [])
    toml = f'[package]\nname = "{name.replace("_", "-")}"\nversion = "0.1.0"\n'
    if "_" in name:
        toml += f'[build]\nsource = "{name}.bpf.c"\n'
    pkg = package_dir(root / name, files, toml)
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux))
    config = json.loads((pkg / ".ebpm" / "config.json").read_text())
    LOADED_NAMES.update(p["name"][:15] for p in config["programs"])
    return pkg


def exec_true() -> None:
    subprocess.run(["/bin/true"], check=True)


@pytest.mark.parametrize("name", ["bootstrap", "bootstrap_legacy"])
def test_bootstrap_events(name: str, tmp_path: Path, vmlinux_h: Path, kernel: None) -> None:
    pkg = build(name, tmp_path, vmlinux_h, header="bootstrap.h")
    run = ebpm_run(pkg, duration=10, max_events=40, trigger=exec_true)
    assert run.code == 0, run.err
    execs = [e for e in run.events if e["comm"] == "true" and not e["exit_event"]]
    exits = [e for e in run.events if e["comm"] == "true" and e["exit_event"]]
    assert execs and execs[0]["filename"].endswith("/true")
    assert exits and exits[0]["exit_code"] == 0 and exits[0]["duration_ns"] > 0
    assert run.record("start")["attached"] == ["handle_exec", "handle_exit"]


@pytest.mark.parametrize("name", ["minimal", "minimal_legacy", "minimal_ns"])
def test_minimal_examples_attach_and_stop(name: str, tmp_path: Path, vmlinux_h: Path,
                                          kernel: None) -> None:
    """bpf_printk only: they load, attach to sys_enter_write and detach cleanly."""
    pkg = build(name, tmp_path, vmlinux_h)
    run = ebpm_run(pkg, duration=0.5, trigger=lambda: os.write(2, b""))
    assert run.code == 0, run.err
    assert run.record("start")["attached"] == ["handle_tp"]
    assert run.record("summary")["stopped_by"] == "duration"


def test_tc_example_in_its_own_namespace(tmp_path: Path, vmlinux_h: Path, kernel: None) -> None:
    pkg = build("tc", tmp_path, vmlinux_h)
    from tests.corpus.conftest import EBPM

    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         f"ip link set lo up && {EBPM} run --json --duration 0.5 --attach tc_ingress=tc:lo "
         f"{pkg}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    start = [json.loads(x) for x in proc.stdout.splitlines() if '"ebpm"' in x][0]
    assert start["attached"] == ["tc_ingress"]
