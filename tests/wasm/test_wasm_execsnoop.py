"""The example app end to end: execsnoop in wasm, a rodata pid filter and a hash-map walk."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from ebpm.loader.wasm import run_guest
from tests.wasm.helpers import Guests, when_ready


def test_execsnoop_filters_by_parent_and_counts(
    guests: Guests, no_leaks: None, tmp_path: Path
) -> None:
    out = tmp_path / "stdout"
    stop = threading.Event()

    def spawn() -> None:
        for _ in range(3):
            subprocess.run(["/bin/true"], check=True)
        # sh is our child (reported); the echo it runs is its child, not ours (filtered out)
        subprocess.run(["/bin/sh", "-c", "/bin/echo hidden >/dev/null; exit 0"], check=True)
        stop.set()  # at once: records still in the ring are handed over before -EINTR

    with when_ready(out, spawn):
        result = run_guest(
            guests.execsnoop, args=["--ppid", str(os.getpid())], name="execsnoop", stop=stop,
            duration=20, stdout=out,
        )
    text = out.read_text()
    assert result.exit_code == 0, text
    assert result.stop_reason == "requested"  # a graceful stop: the guest printed its counts
    execs = re.findall(r"^EXEC pid=(\d+) ppid=(\d+) uid=\d+ comm=(\S+) filename=(\S+)$", text,
                       re.M)
    assert [e[2] for e in execs] == ["true", "true", "true", "sh"], text
    assert {e[1] for e in execs} == {str(os.getpid())}
    assert all(e[3].endswith("/true") or e[3].endswith("/sh") for e in execs)
    assert "echo" not in text
    counts = dict(re.findall(r"^COUNT comm=(\S+) execs=(\d+)$", text, re.M))
    assert counts == {"true": "3", "sh": "1"}, text
    assert result.events_delivered == 4


def test_compiled_module_is_cached_by_digest(guests: Guests, kernel: None, ebpm_env: Path) -> None:
    from ebpm.loader.wasm.engine import compile_module

    compile_module(guests.execsnoop)
    cached = list((ebpm_env / "wasm-cache").glob("*.cwasm"))
    assert len(cached) == 1
    import hashlib

    assert cached[0].name.startswith(hashlib.sha256(guests.execsnoop).hexdigest())
    module = compile_module(guests.execsnoop)  # from the cache this time
    assert {e.name for e in module.exports} >= {"_start", "memory", "__indirect_function_table"}


def test_cache_entry_others_could_write_is_not_loaded(
    guests: Guests, kernel: None, ebpm_env: Path
) -> None:
    from ebpm.loader.wasm.engine import compile_module

    compile_module(guests.execsnoop)
    (entry,) = (ebpm_env / "wasm-cache").glob("*.cwasm")
    entry.write_bytes(b"planted native code")
    entry.chmod(0o666)  # writable by anyone: never deserialized, recompiled instead
    module = compile_module(guests.execsnoop)
    assert "_start" in {e.name for e in module.exports}
    (entry,) = (ebpm_env / "wasm-cache").glob("*.cwasm")
    assert entry.stat().st_mode & 0o022 == 0
    assert entry.read_bytes() != b"planted native code"


def _execs(guests: Guests, out: Path) -> list[str]:
    """One run of the execsnoop guest until three of our children exec: their comms."""
    stop = threading.Event()

    def spawn() -> None:
        for _ in range(3):
            subprocess.run(["/bin/true"], check=True)
        stop.set()

    with when_ready(out, spawn):
        result = run_guest(guests.execsnoop, args=["--ppid", str(os.getpid())],
                           name="execsnoop", stop=stop, duration=20, stdout=out)
    text = out.read_text()
    assert result.exit_code == 0, text
    return re.findall(r"^EXEC pid=\d+ ppid=\d+ uid=\d+ comm=(\S+)", text, re.M)


def test_the_guests_object_loads_with_the_core_cache(
    guests: Guests, no_leaks: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The BPF object a guest loads gets the CO-RE cache's kernel types as a native run's
    does: made after its first load (waited for as the run ends), given to libbpf on the
    next; a damaged file is loaded past (the kernel's BTF) and removed."""
    cache = tmp_path / "core"
    monkeypatch.setenv("EBPM_CORE_CACHE", str(cache))
    assert _execs(guests, tmp_path / "first") == ["true"] * 3
    (made,) = cache.glob("*/*.btf")  # (the guest's object relocates task_struct's fields)
    assert made.stat().st_size < 4096 < Path("/sys/kernel/btf/vmlinux").stat().st_size
    assert _execs(guests, tmp_path / "second") == ["true"] * 3  # relocated right with it
    made.write_bytes(b"\x9f\xeb\x01\x00" + bytes(64))  # a BTF magic, then nonsense
    assert _execs(guests, tmp_path / "third") == ["true"] * 3
    assert not made.exists()  # (the load without it succeeded: it was the cause)
