"""The CO-RE cache (`ebpm.loader.corecache`): after an object's first run in a boot, bpftool's
minimal BTF of the kernel types its relocations use, handed to libbpf on the next loads so that
they do not read the whole kernel BTF. Same events either way; nothing cached for an object
whose relocations name a type vmlinux lacks (libbpf would look in the modules' BTF); a damaged,
foreign or group-writable file is not used."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ebpm.loader import corecache
from ebpm.loader.btf import Kind
from ebpm.run import load_path, run_object
from ebpm.run.sink import EventSink
from tests.loader.conftest import ROOT, Trigger, compile_bpf, require_bpf

pytestmark = pytest.mark.kernel
EBPM = [str(Path(sys.executable).with_name("ebpm"))]

# an object whose CO-RE relocations name a type vmlinux has and one it lacks
MISSING = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct ebpm_not_in_vmlinux { int mark; } __attribute__((preserve_access_index));
struct task_struct { int pid; } __attribute__((preserve_access_index));
int found = 0;
SEC("tracepoint/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
	found = bpf_core_field_exists(struct ebpm_not_in_vmlinux, mark) * 10 +
		bpf_core_field_exists(struct task_struct, pid);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty CO-RE cache of this test's own."""
    where = tmp_path / "core"
    monkeypatch.setenv("EBPM_CORE_CACHE", str(where))
    return where


class _Events(EventSink):
    def __init__(self, path: str) -> None:
        self.path, self.seen = path, []

    def event(self, event: dict) -> None:  # type: ignore[override]
        if event.get("fname") == self.path:
            self.seen.append(event)


def _opens(pkg, path: str) -> list[dict]:
    """A run of opensnoop (failed opens of this process) until `path`'s event arrives."""

    def miss() -> None:
        try:
            open(path).close()
        except FileNotFoundError:
            pass

    sink = _Events(path)
    with Trigger(miss, 0.02):
        run_object(pkg.object, pkg.config, btf=pkg.btf,
                   args=["--failed", "--pid", str(os.getpid())], duration=1.5, sink=sink)
    return sink.seen


def test_the_second_run_loads_with_the_cached_types_and_decodes_the_same(built, cache) -> None:
    require_bpf()
    pkg = load_path(built("opensnoop"))
    assert corecache.lookup(pkg.object) is None
    path = f"/tmp/ebpm-core-{uuid.uuid4().hex}"
    first = _opens(pkg, path)
    cached = corecache.lookup(pkg.object)  # made after the first load, waited for at its end
    assert cached is not None and Path(cached).parent.parent == cache
    assert os.path.getsize(cached) < 4096 < os.path.getsize(corecache.VMLINUX)
    second = _opens(pkg, path)
    assert first and second, "no event for the missing file"
    assert first[0].keys() == second[0].keys()
    assert second[0]["fname"] == path and second[0]["pid"] == os.getpid()  # relocated right
    assert second[0]["ret"] == first[0]["ret"] == -2  # ENOENT


def test_a_built_directory_is_named_by_its_file_and_a_rebuild_is_a_new_entry(built,
                                                                            tmp_path: Path,
                                                                            cache) -> None:
    require_bpf()
    pkg = tmp_path / "opensnoop"
    shutil.copytree(built("opensnoop"), pkg)
    obj = pkg / ".ebpm" / "opensnoop.bpf.o"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*EBPM, "-vv", "run", "--duration", "0.2", str(pkg)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    def target_ids(log: str) -> set[int]:  # the kernel types libbpf relocated against
        return {int(m) for m in re.findall(r"found target candidate \[(\d+)\]", log)}

    first = run()
    assert first.returncode == 0, first.stderr
    (entry,) = [p for p in cache.rglob("*") if p.is_file()]
    assert entry.name == corecache.file_identity(obj.stat()) + ".btf"
    second = run()
    assert second.returncode == 0, second.stderr
    # the first against vmlinux's types (ids in the tens of thousands), the second against
    # the cached file's few
    assert min(target_ids(first.stderr)) > 1000
    assert 0 < max(target_ids(second.stderr)) < 100
    data = obj.read_bytes()
    obj.unlink()
    obj.write_bytes(data)  # a new file (another inode and change time): a new entry
    assert run().returncode == 0
    assert len([p for p in cache.rglob("*.btf")]) == 2


@pytest.mark.parametrize("form", ["bpf.o", "package.json"])
def test_an_object_file_is_named_by_its_file_too(built, tmp_path: Path, cache,
                                                 form: str) -> None:
    """`ebpm run X.bpf.o` (or an eunomia package.json, the object decoded from it) names the
    object as a built directory's (no SHA-256 of it, no hashlib, before libbpf's load); the
    same bytes in another file are another entry."""
    require_bpf()
    if form == "bpf.o":
        obj = tmp_path / "opensnoop.bpf.o"
        shutil.copyfile(built("opensnoop") / ".ebpm" / "opensnoop.bpf.o", obj)
    else:  # eunomia-bpf's bootstrap as ecc wrote it (tests/corpus)
        obj = tmp_path / "bootstrap.json"
        shutil.copyfile(ROOT / "tests" / "corpus" / "eunomia-bpf" / "ecli-tests" /
                        "bootstrap.json", obj)

    def run(path: Path) -> None:
        done = subprocess.run([*EBPM, "run", "--duration", "0.2", str(path)],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr

    run(obj)
    (entry,) = [p for p in cache.rglob("*") if p.is_file()]
    assert entry.name == corecache.file_identity(obj.stat()) + ".btf"
    other = tmp_path / f"copy.{form}"
    shutil.copyfile(obj, other)
    run(other)
    assert {p.name for p in cache.rglob("*.btf")} == {
        corecache.file_identity(f.stat()) + ".btf" for f in (obj, other)}


def test_an_object_relocated_against_a_type_vmlinux_lacks_is_not_cached(tmp_path: Path,
                                                                       cache) -> None:
    require_bpf()
    obj = compile_bpf(tmp_path, "missing", MISSING).read_bytes()
    assert ("ebpm_not_in_vmlinux", Kind.STRUCT) in (corecache.relocated_types(obj) or [])
    assert corecache.make(obj) is None
    assert corecache.lookup(obj) is None
    assert corecache.make_later(obj) is None  # the marker: not tried again this boot
    assert [p.suffix for p in cache.rglob("*") if p.is_file()] == [".none"]


def test_a_damaged_cached_file_is_loaded_past_and_removed(built, cache) -> None:
    require_bpf()
    pkg = load_path(built("opensnoop"))
    made = corecache.make(pkg.object)
    assert made is not None and corecache.lookup(pkg.object) == made
    Path(made).write_bytes(b"\x9f\xeb\x01\x00" + bytes(64))  # a BTF magic, then nonsense
    path = f"/tmp/ebpm-core-{uuid.uuid4().hex}"
    assert _opens(pkg, path)  # loaded again with the kernel's BTF
    assert not Path(made).exists()  # (the load without it succeeded: it was the cause)


def test_a_file_others_may_write_or_another_user_owns_is_not_used(built, cache) -> None:
    pkg = load_path(built("opensnoop"))
    made = corecache.make(pkg.object)
    assert made is not None
    os.chmod(made, 0o666)
    assert corecache.lookup(pkg.object) is None
    os.chmod(made, 0o644)
    assert corecache.lookup(pkg.object) == made
    os.chmod(Path(made).parent, 0o777)
    assert corecache.lookup(pkg.object) is None


def test_other_boots_are_removed_when_one_is_made(built, cache) -> None:
    pkg = load_path(built("opensnoop"))
    old = cache / str(uuid.uuid4())
    old.mkdir(parents=True)
    (old / "x.btf").write_bytes(b"")
    other = cache / "not-a-boot"  # (whatever else is there is left alone)
    other.mkdir()
    assert corecache.make(pkg.object) is not None
    assert not old.exists() and other.exists()


def test_no_relocations_no_file(hello_object: Path, cache) -> None:
    """An object without CO-RE relocations: libbpf reads no kernel BTF for it anyway."""
    obj = hello_object.read_bytes()
    assert corecache.relocated_types(obj) is None
    assert corecache.make(obj) is None and corecache.lookup(obj) is None
    assert corecache.make_later(obj) is None  # (the marker)
