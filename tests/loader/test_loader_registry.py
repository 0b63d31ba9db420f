"""`ebpm run REF`: a package pushed to a real registry runs by reference (pull, then load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import ROOT, Trigger, require_bpf
from tests.registryd import Registryd

pytestmark = [pytest.mark.kernel, pytest.mark.registry]


def test_run_by_reference_pulls_and_loads(built, registry: Registryd, ebpm_env: Path) -> None:
    require_bpf()
    from ebpm.transfer.push import push

    ref = f"{registry.host}/tools/opensnoop"
    push(built("opensnoop"), ref)
    path = f"/tmp/ebpm-ref-{uuid.uuid4().hex}"
    ebpm = str(Path(sys.executable).with_name("ebpm"))

    help_proc = subprocess.run([ebpm, "run", "--allow-unsigned", f"{ref}:0.1.0", "--", "-h"],
                               capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert help_proc.returncode == 0, help_proc.stderr
    assert "--failed    show failed opens only" in help_proc.stdout

    proc = subprocess.Popen([ebpm, "run", "--allow-unsigned", "--json", "--max-events", "1",
                             "--duration", "10", f"{ref}:0.1.0", "--", "--failed", "--pid",
                             str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)

    def touch() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    with Trigger(touch, 0.05):
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    event = json.loads(out.splitlines()[0])
    assert event["fname"] == path and event["pid"] == os.getpid() and event["ret"] == -2


def test_unsigned_reference_is_refused_by_default(built, registry: Registryd) -> None:
    from ebpm.errors import EbpmError
    from ebpm.run import resolve_target
    from ebpm.transfer.push import push

    ref = f"{registry.host}/tools/unsigned-sigsnoop"
    push(built("sigsnoop"), ref)
    with pytest.raises(EbpmError) as info:
        resolve_target(f"{ref}:0.1.0")
    assert "sign" in (info.value.message + (info.value.hint or "")).lower()
