"""A wasm package end to end: `ebpm build` of the example, push, pull, and run its wasm layer."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

from ebpm.loader.wasm import run_guest
from tests.registryd import Registryd
from tests.wasm.helpers import EXAMPLE, when_ready


def test_build_push_pull_run(registry: Registryd, no_leaks: None, tmp_path: Path) -> None:
    from ebpm.build.builder import build
    from ebpm.transfer.pull import pull
    from ebpm.transfer.push import push

    pkg = tmp_path / "execsnoop"
    shutil.copytree(EXAMPLE, pkg)
    built = build(pkg)
    assert built.wasm_path is not None and built.wasm_path.is_file()

    ref = f"{registry.host}/tools/execsnoop"
    pushed = push(pkg, ref)
    pulled = pull(f"{ref}:0.1.0", allow_unsigned=True)
    assert pulled.digest == pushed.digest
    assert pulled.wasm == built.wasm_path.read_bytes()
    titles = [layer.title for layer in pulled.manifest.layers]
    assert "execsnoop.wasm" in titles

    out = tmp_path / "stdout"
    stop = threading.Event()

    def spawn() -> None:
        subprocess.run(["/bin/true"], check=True)
        stop.set()

    assert pulled.wasm is not None
    with when_ready(out, spawn):
        result = run_guest(pulled.wasm, args=["--ppid", str(os.getpid())],
                           name=pulled.config.name, stop=stop, duration=20, stdout=out)
    text = out.read_text()
    assert result.exit_code == 0, text
    assert re.search(r"^EXEC pid=\d+ ppid=\d+ uid=\d+ comm=true filename=\S*/true$", text, re.M)
    assert "COUNT comm=true execs=1" in text
