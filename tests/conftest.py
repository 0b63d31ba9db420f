"""Session-wide fixtures: a real registry, a compiled BPF object, and an isolated ebpm home."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registryd import Registryd, start_registry

HELLO_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile int targ_pid = 0;

SEC("tracepoint/syscalls/sys_enter_openat")
int handle_openat(void *ctx)
{
	return targ_pid;
}

char LICENSE[] SEC("license") = "GPL";
"""


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a user has it. A suite started in the background of a non-interactive shell
    (`make test &` in a CI script, nohup) inherits SIGINT ignored, and so would every ebpm it
    starts: the Ctrl-C tests would then find their signals dropped by the shell's choice."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # hypothesis's default 200 ms deadline per example is a timed assertion: under load (a
    # worker per core beside registries and compilers) a property test failed on it alone
    from hypothesis import settings

    settings.register_profile("ebpm", deadline=None)
    settings.load_profile("ebpm")


@pytest.fixture(scope="session")
def registry() -> Iterator[Registryd]:
    """A plain (anonymous, http) distribution registry on a free loopback port."""
    reg = start_registry()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def hello_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real BPF object (a tracepoint program with one const volatile global)."""
    d = tmp_path_factory.mktemp("hello")
    (d / "hello.bpf.c").write_text(HELLO_C)
    multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I", multiarch, "-c", "hello.bpf.c",
                    "-o", "hello.bpf.o"], cwd=d, check=True)
    return d / "hello.bpf.o"


@pytest.fixture(scope="session")
def core_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CO-RE cache of this test session (a worker's): an object's second run uses it."""
    return tmp_path_factory.mktemp("core-cache")


@pytest.fixture(autouse=True)
def ebpm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, core_cache: Path) -> Path:
    """Every test gets its own empty store and config dir, online, with no docker credentials;
    the CO-RE cache is the session's (not /run/ebpm/core)."""
    home = tmp_path / "ebpm-home"
    monkeypatch.setenv("EBPM_HOME", str(home))
    monkeypatch.setenv("EBPM_CORE_CACHE", str(core_cache))
    monkeypatch.setenv("EBPM_CONFIG", str(tmp_path / "ebpm-config"))
    monkeypatch.setenv("EBPM_DATA", str(tmp_path / "ebpm-data"))
    monkeypatch.setenv("EBPM_SYSTEM_CONFIG", str(tmp_path / "ebpm-system-config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    for var in ("EBPM_OFFLINE", "EBPM_REGISTRY", "EBPM_CA_FILE", "EBPM_INSECURE_REGISTRIES",
                "SOURCE_DATE_EPOCH", "EBPM_KEY_PASSWORD", "SUDO_USER", "SUDO_UID", "SUDO_GID"):
        monkeypatch.delenv(var, raising=False)
    import ebpm.access

    ebpm.access._clients.clear()
    return home
