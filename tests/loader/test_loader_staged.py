"""`ebpm run DIR` of a built directory runs from the text form of its config
(`.ebpm/loadtime.txt`, ebpm.loadtime), which names the config.json the build wrote beside it: a
config.json edited by hand since `ebpm build` is refused before anything is attached, the flags'
checks still apply to what the form says, and without a text form of this version config.json
is read as before."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.loader.conftest import ROOT, Trigger, require_bpf

pytestmark = pytest.mark.kernel
EBPM = [str(Path(sys.executable).with_name("ebpm"))]


def _copy(built, tmp_path: Path) -> Path:
    pkg = tmp_path / "opensnoop"
    shutil.copytree(built("opensnoop"), pkg)
    return pkg


def _run(pkg: Path) -> subprocess.CompletedProcess[str]:
    """A run that stops at its first event (this process's failed opens)."""
    path = f"/tmp/ebpm-staged-{uuid.uuid4().hex}"

    def miss() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    proc = subprocess.Popen([*EBPM, "run", "--json", "--max-events", "1", "--duration", "10",
                             str(pkg), "--", "--failed", "--pid", str(os.getpid())],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    with Trigger(miss, 0.05):
        out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _refused(proc: subprocess.CompletedProcess[str], *words: str, hint: str = "ebpm build") -> None:
    assert proc.returncode not in (0, None), proc.stderr
    assert "Traceback" not in proc.stderr and "ebpm: opensnoop: attached" not in proc.stderr
    error, said = proc.stderr.strip().splitlines()
    assert error.startswith("error: ") and all(w in error for w in words), proc.stderr
    assert said.startswith("hint: ") and hint in said, proc.stderr
    assert not [line for line in proc.stdout.splitlines() if "fname" in line], proc.stdout


def test_a_directory_edited_since_the_build_is_refused_before_attaching(built,
                                                                        tmp_path: Path) -> None:
    require_bpf()
    pkg = _copy(built, tmp_path)
    config_file = pkg / ".ebpm" / "config.json"
    config = json.loads(config_file.read_bytes())
    for arg in config["args"]:
        if arg["name"] == "targ_failed":
            arg["offset"] += 1  # the load started from the text form's offset: not this one
    config_file.write_text(json.dumps(config))
    _refused(_run(pkg), "loadtime.txt and config.json disagree", "nothing was attached")


def test_the_flags_checks_apply_to_the_text_form(built, tmp_path: Path) -> None:
    require_bpf()
    pkg = _copy(built, tmp_path)
    text_file = pkg / ".ebpm" / "loadtime.txt"
    text = text_file.read_text()
    text_file.write_text(text.replace("arg targ_failed failed bool 1 12 0",
                                      "arg targ_failed failed bool 1 4096 0"))
    _refused(_run(pkg), "--failed", "no .rodata slot")
    text_file.write_text(text.replace("arg targ_tgid pid int 4 0 0\n", ""))
    _refused(_run(pkg), "unknown flag --pid", hint="flags: --tid, --uid, --failed")


def test_a_garbled_text_form_is_refused(built, tmp_path: Path) -> None:
    require_bpf()
    pkg = _copy(built, tmp_path)
    text_file = pkg / ".ebpm" / "loadtime.txt"
    text_file.write_bytes(text_file.read_bytes()[:-20])
    _refused(_run(pkg), "loadtime.txt", "truncated")


def test_without_a_text_form_of_this_version_config_json_is_read(built, tmp_path: Path) -> None:
    require_bpf()
    pkg = _copy(built, tmp_path)
    text_file = pkg / ".ebpm" / "loadtime.txt"
    text = text_file.read_text()
    text_file.write_text(text.replace("ebpm-loadtime 2\n", "ebpm-loadtime 3\nsomething new\n"))
    for _ in ("newer", "missing"):
        proc = _run(pkg)
        assert proc.returncode == 0, proc.stderr
        assert [json.loads(line)["ret"] for line in proc.stdout.splitlines()
                if "fname" in line] == [-2]
        text_file.unlink(missing_ok=True)


def test_the_run_takes_the_text_form_and_parses_config_json_only_when_asked(
        built, tmp_path: Path) -> None:
    """What the run needs comes from the text form (`Launch.spec`); the whole config (the
    description, the flags' help, the metrics: `--metrics`) from config.json when asked for."""
    require_bpf()
    from ebpm.run import launch, stage
    from ebpm.run.native import Launch

    pkg = _copy(built, tmp_path)
    staged = stage(str(pkg))
    assert staged is not None and staged.sidecar() == (pkg / ".ebpm" / "opensnoop.btf"
                                                       ).read_bytes()
    whole = json.loads((pkg / ".ebpm" / "config.json").read_bytes())
    with launch(staged, args=["--failed"]) as started:
        assert isinstance(started, Launch) and started.spec is staged.loadtime
        assert started._config is None  # (nothing parsed config.json yet)
        assert started.values["targ_failed"] is True and started.values["targ_uid"] == (
            4294967295)  # the text form's defaults, the flag given
        config = started.config
    assert config.description == whole["description"] and config.description
    assert [a.help for a in config.args] == [a["help"] for a in whole["args"]]
    assert config.programs == staged.loadtime.programs
