"""Two `ebpm hub refresh` processes on one index: the second waits for the first and starts
from its index, so what both found is kept (never last-writer-wins); --no-wait fails at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.hub.crawl import update
from ebpm.hub.index import HubIndex, hub_lock
from tests.hub.helpers import package_config, publish
from tests.registryd import Registryd, start_registry

pytestmark = pytest.mark.registry


@pytest.fixture()
def reg() -> Iterator[Registryd]:
    reg = start_registry()
    yield reg
    reg.stop()


def _refresh(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "ebpm", "hub", "refresh", *args],
                                stdout=subprocess.PIPE, stderr=err, env=dict(os.environ))


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[bytes]) -> str:
    """The process's stderr once it holds `needle` (or it ended, or 60 s passed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        text = path.read_text()
        if needle in text:
            return text
        time.sleep(0.05)
    return path.read_text()


def test_two_refreshes_keep_both_results(reg: Registryd, tmp_path: Path) -> None:
    for i in range(6):
        publish(reg.host, f"left/tool{i}", package_config(f"tool{i}"))
        publish(reg.host, f"right/tool{i}", package_config(f"tool{i}"))
    procs = []
    # a refresh holds the index (this test, here): both real refreshes must wait for it
    with hub_lock("hub refresh"):
        for side in ("left", "right"):
            log = tmp_path / f"{side}.err"
            procs.append((_refresh(f"{reg.host}/{side}/*", "--json", log=log), log))
        for proc, log in procs:
            text = _wait_for(log, "waiting", proc)
            assert text.splitlines() == [
                f"another hub refresh (pid {os.getpid()}) is running; waiting for it "
                "(Ctrl-C to stop, --no-wait fails instead)"], text
        # --no-wait: one line, a hint, non-zero, nothing written
        no_wait = subprocess.run([sys.executable, "-m", "ebpm", "hub", "refresh", reg.host,
                                  "--no-wait"], capture_output=True, text=True,
                                 env=dict(os.environ), timeout=60)
        assert no_wait.returncode == 1 and no_wait.stdout == ""
        assert no_wait.stderr.splitlines() == [
            f"error: hub refresh: another hub refresh (pid {os.getpid()}) is running",
            "hint: run again without --no-wait to wait for it (what both find is kept)"]
        assert HubIndex.load().sources == []
    for proc, log in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, log.read_text()
        assert json.loads(out)["listed"] == 6
    index = HubIndex.load()
    assert sorted(index.sources) == [f"{reg.host}/left/*", f"{reg.host}/right/*"]
    assert sorted(index.repositories) == sorted(
        f"{reg.host}/{side}/tool{i}" for side in ("left", "right") for i in range(6))
    searched = json.loads((index.path or Path()).with_name("search.json").read_text())
    assert len(searched) == 12


def test_refreshes_started_together_lose_nothing(reg: Registryd, tmp_path: Path) -> None:
    """No lock held by the test: whichever runs first, the index ends with both sources."""
    for i in range(8):
        publish(reg.host, f"a/t{i}", package_config(f"t{i}"))
        publish(reg.host, f"b/t{i}", package_config(f"t{i}"))
    procs = [(_refresh(f"{reg.host}/{side}/*", log=tmp_path / side), tmp_path / side)
             for side in ("a", "b")]
    for proc, log in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0, log.read_text()
    index = HubIndex.load()
    assert sorted(index.sources) == [f"{reg.host}/a/*", f"{reg.host}/b/*"]
    assert len(index.repositories) == 16 and len(index.versions) == 16


def test_an_interrupted_save_never_leaves_an_index_without_its_search_file(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between the two files: the old index.json stays (the next refresh starts from it
    and writes both again); `hub list` never shows what `search` cannot find."""
    import ebpm.files

    index = HubIndex.load()
    index.sources.append("localhost:5000")
    written: list[str] = []
    real = ebpm.files.atomic_write

    def interrupted_after_one(path: str | Path, *args: object, **kwargs: object) -> None:
        if written:
            raise KeyboardInterrupt
        written.append(Path(path).name)
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ebpm.files, "atomic_write", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        index.save()
    assert written == ["search.json"]
    assert HubIndex.load().sources == []  # index.json untouched



def test_build_from_an_index_it_may_not_write(reg: Registryd, tmp_path: Path) -> None:
    """The lock is for writers: `hub build` from a store it can only read (another user's, a
    read-only mount) still builds the site."""
    import shutil

    from tests.hostile import run_child

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("dropping capabilities needs root and setpriv")
    publish(reg.host, "tools/opensnoop", package_config("opensnoop"))
    index, _ = update([reg.host])
    hub = (index.path or Path()).parent
    (hub / "lock").unlink()
    for path in [hub, *hub.rglob("*")]:
        os.chown(path, 4242, 4242)
    site = tmp_path / "site"
    r = run_child(["hub", "build", "-o", str(site)],
                  prefix=["setpriv", "--bounding-set",
                          "-dac_override,-dac_read_search,-fowner", "--"])
    assert r.code == 0, r.err
    assert (site / "index.html").is_file() and not (hub / "lock").exists()
    r = run_child(["hub", "refresh"],  # a writer still needs the lock: said plainly
                  prefix=["setpriv", "--bounding-set",
                          "-dac_override,-dac_read_search,-fowner", "--"])
    assert r.code == 1 and f"error: permission denied: {hub / 'lock'}" in r.err, r.err
