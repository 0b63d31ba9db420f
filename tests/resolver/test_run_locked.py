"""`ebpm run NAME` inside a project (here: from a subdirectory) runs the package ebpm.lock pins
for the dependency NAME, by digest (real registry, real kernel); outside it NAME is a registry
name as always."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import Trigger, built, require_bpf, vmlinux_h  # noqa: F401
from tests.loader.test_loader_registry import _open_missing
from tests.registryd import Registryd

pytestmark = [pytest.mark.kernel, pytest.mark.registry]


def test_run_name_in_a_project_runs_the_locked_version(
        built, registry: Registryd, tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    require_bpf()
    from ebpm.deps.lock import lock
    from ebpm.transfer.push import push

    ref = f"{registry.host}/lk/opensnoop"
    first = push(built("opensnoop"), ref)
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "ebpm.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
        f'snoop = {{ ref = "{ref}", version = "^0.1" }}\n')
    lock(app, allow_unsigned=True)
    locked = json.loads((app / "ebpm.lock").read_text())["packages"][0]["manifest_digest"]
    assert locked == first.digest

    ebpm = str(Path(sys.executable).with_name("ebpm"))
    env = dict(os.environ, EBPM_REGISTRY=registry.host)
    path = f"/tmp/ebpm-locked-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [ebpm, "run", "--allow-unsigned", "--json", "--max-events", "1", "--duration", "10",
         "snoop", "--", "--failed", "--pid", str(os.getpid())],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=app / "src", env=env)
    with Trigger(lambda: _open_missing(path), 0.05):
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    events = [e for e in map(json.loads, out.splitlines()) if "ebpm" not in e]  # not status
    assert events, (out, err)
    event = events[0]
    assert event["fname"] == path and event["pid"] == os.getpid()

    # outside the project the name means the registry's package `snoop`: there is none
    outside = subprocess.run([ebpm, "run", "--allow-unsigned", "snoop", "--", "-h"],
                             capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30)
    assert outside.returncode == 1 and f"{registry.host}/snoop" in outside.stderr
