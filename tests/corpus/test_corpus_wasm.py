"""wasm-bpf modules as upstream ships them (C/wasi-sdk, Rust, TinyGo), run unmodified: by path, by
URL, by registry reference after `ebpm push`, and as ecli's OCI wasm images."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, ebpm_run
from tests.loader.test_loader_sources import http_dir  # noqa: F401 - fixture
from tests.signing.clients import tool

pytestmark = pytest.mark.kernel
MODULES = CORPUS / "wasm-bpf" / "runtime-tests"
BOOTSTRAP_WASM = CORPUS / "eunomia-bpf" / "ecli-tests" / "bootstrap.wasm"
LOADED_NAMES.update({"sys_enter_execve", "handle_exec", "handle_exit"})


def exec_marked(tmp: Path, mark: str) -> None:
    subprocess.run(["/bin/echo", mark], stdout=subprocess.DEVNULL, check=True)


def test_bare_wasm_module_by_path(kernel: None, tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    run = ebpm_run(MODULES / "execve.wasm", duration=2, json_lines=False,
                   trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0, run.err
    assert f"/bin/echo {mark}" in run.out  # the guest's own printf: "[pid] comm -> argv"
    assert "execve" in run.err.splitlines()[0]  # the start line names the module


def test_bare_wasm_module_renamed_is_still_a_wasm_module(kernel: None, tmp_path: Path) -> None:
    odd = tmp_path / "module.bin"
    shutil.copyfile(MODULES / "execve.wasm", odd)
    mark = uuid.uuid4().hex
    run = ebpm_run(odd, duration=2, json_lines=False, trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0 and mark in run.out, run.err


def test_ecli_bootstrap_module(kernel: None, tmp_path: Path) -> None:
    run = ebpm_run(BOOTSTRAP_WASM, duration=2, json_lines=False,
                   trigger=lambda: subprocess.run(["/bin/true"], check=True))
    assert run.code == 0, run.err
    assert "EXEC" in run.out and "true" in run.out


def test_rust_module(kernel: None, tmp_path: Path) -> None:
    """rust-bootstrap.wasm: upstream's Rust example (wasm32-wasi), prebuilt by upstream."""
    mark = uuid.uuid4().hex[:8]
    marked = tmp_path / f"rs-{mark}"
    shutil.copyfile("/bin/true", marked)
    marked.chmod(0o755)
    run = ebpm_run(MODULES / "rust-bootstrap.wasm", duration=3, json_lines=False,
                   trigger=lambda: subprocess.run([str(marked)], check=True))
    assert run.code == 0, run.err
    execs = [line.split() for line in run.out.splitlines() if f"rs-{mark}" in line]
    assert any(w[1] == "EXEC" and w[-1] == str(marked) for w in execs), run.out[-2000:]
    assert any(w[1] == "EXIT" and w[2] == f"rs-{mark}" for w in execs), run.out[-2000:]
    assert "rust-bootstrap" in run.err.splitlines()[0]


def test_tinygo_module_without_eintr_is_hard_stopped(kernel: None, tmp_path: Path) -> None:
    """go-execve polls forever and never looks at -EINTR: the hard stop ends it after
    --duration, says so in one line, and the run still exits 0 (the user asked for it)."""
    mark = uuid.uuid4().hex
    run = ebpm_run(MODULES / "go-execve.wasm", duration=2, json_lines=False,
                   trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0, run.err
    assert mark in run.out
    stops = [line for line in run.err.splitlines() if "hard stop" in line]
    assert len(stops) == 1, run.err


def test_guest_exit_status_is_ebpm_exit_status(kernel: None) -> None:
    run = ebpm_run(MODULES / "abnormal_exit.wasm", duration=5, json_lines=False)
    assert run.code == 1


def test_bare_wasm_by_url(kernel: None, http_dir, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    base, root = http_dir
    shutil.copyfile(MODULES / "execve.wasm", root / "execve.wasm")
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    mark = uuid.uuid4().hex
    run = ebpm_run(f"{base}/execve.wasm", duration=2, json_lines=False,
                   options=["--allow-unsigned"], trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0, run.err
    assert mark in run.out


def test_push_wasm_then_run_and_inspect_by_reference(kernel: None, registry,
                                                      tmp_path: Path) -> None:
    ref = f"{registry.host}/corpus/execve:0.1.0"
    pushed = ebpm_cli("push", str(MODULES / "execve.wasm"), ref, "--json")
    assert json.loads(pushed.stdout)["reference"].startswith(f"{registry.host}/corpus/execve")
    manifest = json.loads(ebpm_cli("inspect", ref, "--json").stdout)
    types = [layer["mediaType"] for layer in manifest["manifest"]["layers"]]
    assert types == ["application/vnd.ebpm.wasm.module.v1+wasm"]  # no BPF object layer
    mark = uuid.uuid4().hex
    run = ebpm_run(ref, duration=2, json_lines=False, options=["--allow-unsigned"],
                   trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0, run.err
    assert mark in run.out


def test_ecli_oci_wasm_image(kernel: None, registry, tmp_path: Path) -> None:
    """An image as ecli pushes it (oci-distribution's wasm media types), made by oras."""
    oras = tool("oras")
    work = tmp_path / "img"
    work.mkdir()
    shutil.copyfile(MODULES / "execve.wasm", work / "app.wasm")
    (work / "config.json").write_text("{}")
    ref = f"{registry.host}/ecli/execve:latest"
    subprocess.run([oras, "push", "--plain-http", ref,
                    "--config", "config.json:application/vnd.wasm.config.v1+json",
                    "app.wasm:application/vnd.wasm.content.layer.v1+wasm"],
                   cwd=work, check=True, capture_output=True)
    out = tmp_path / "out"
    pulled = ebpm_cli("pull", "--allow-unsigned", ref, "--json", "-o", str(out))
    assert json.loads(pulled.stdout)["name"] == "execve"
    assert (out / "app.wasm").read_bytes() == (MODULES / "execve.wasm").read_bytes()
    assert json.loads(ebpm_cli("inspect", ref, "--json").stdout)["config"]["name"] == "execve"
    mark = uuid.uuid4().hex
    run = ebpm_run(ref, duration=2, json_lines=False, options=["--allow-unsigned"],
                   trigger=lambda: exec_marked(tmp_path, mark))
    assert run.code == 0, run.err
    assert mark in run.out
