"""Corpus fixtures: run the real `ebpm` CLI on third-party programs while a trigger fires.

Every run is a child process (`ebpm run --json`), so each test exercises exactly what a user
types; the loader's leak checks (no program, link or fd left behind) apply here too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.loader.conftest import (  # noqa: F401 - fixtures shared with the loader tests
    LOADED_NAMES,
    Trigger,
    no_bpf_fds_leaked,
    no_programs_left_behind,
    require_bpf,
    vmlinux_h,
)

CORPUS = Path(__file__).resolve().parent
EBPM = str(Path(sys.executable).with_name("ebpm"))


@dataclass
class Run:
    """What one `ebpm run --json` printed: events, map records and ebpm's own records."""

    code: int
    out: str
    err: str
    events: list[dict[str, Any]] = field(default_factory=list)
    maps: list[dict[str, Any]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)  # {"ebpm": "start"|"summary"}

    def record(self, kind: str) -> dict[str, Any]:
        found = [r for r in self.records if r.get("ebpm") == kind]
        assert found, f"no {kind} record in {self.out!r} (stderr {self.err!r})"
        return found[-1]

    def final(self, name: str) -> dict[str, Any]:
        found = [m for m in self.maps if m["map"] == name and m["final"]]
        assert found, f"no final snapshot of {name} in {self.out!r} (stderr {self.err!r})"
        return found[-1]


def ebpm_run(
    target: str | Path,
    args: Sequence[str] = (),
    *,
    options: Sequence[str] = (),
    trigger: Callable[[], object] | None = None,
    period: float = 0.05,
    duration: float = 15,
    max_events: int | None = None,
    json_lines: bool = True,
    timeout: float = 60,
) -> Run:
    """`ebpm run [--json] OPTIONS TARGET -- ARGS` with `trigger` repeating until it exits."""
    cmd = [EBPM, "run", "--duration", str(duration), *options]
    if json_lines:
        cmd.append("--json")
    if max_events is not None:
        cmd += ["--max-events", str(max_events)]
    cmd.append(str(target))
    if args:
        cmd += ["--", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if trigger is not None:
            with Trigger(trigger, period):
                out, err = proc.communicate(timeout=timeout)
        else:
            out, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    run = Run(proc.returncode, out, err)
    if json_lines:
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            doc = json.loads(line)
            if "ebpm" in doc:
                run.records.append(doc)
            elif "map" in doc and "rows" in doc:
                run.maps.append(doc)
            else:
                run.events.append(doc)
    return run


def ebpm_cli(*args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([EBPM, *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"ebpm {' '.join(args)}: {proc.stderr}"
    return proc


def package_dir(dest: Path, files: Sequence[Path], toml: str) -> Path:
    """A package directory as a user makes one: unmodified sources plus an ebpm.toml."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, dest / f.name)
    (dest / "ebpm.toml").write_text(toml)
    return dest


@pytest.fixture
def kernel() -> None:
    require_bpf()
