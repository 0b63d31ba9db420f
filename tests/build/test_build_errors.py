"""Build failures speak clearly: compiler errors with file:line, missing tools with the fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ebpm.build import build
from ebpm.build.scaffold import init_package
from ebpm.build.toolchain import find_tool
from ebpm.build.vmlinux import vmlinux_header
from ebpm.errors import BuildError, CompileError, ToolMissingError
from tests.cli import ebpm

BAD_C = """// SPDX-License-Identifier: GPL-2.0
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx)
{
	return undeclared_thing + 1;
}
"""


def _tools_dir(tmp_path: Path, *tools: str) -> Path:
    """A PATH directory holding only `tools` (symlinks to the real ones)."""
    d = tmp_path / "bin"
    d.mkdir()
    for tool in tools:
        os.symlink(find_tool(tool), d / tool)
    return d


def test_compiler_error_names_file_and_line(
    make_package: Callable[..., Path], vmlinux_h: Path
) -> None:
    root = make_package("bad", {"bad.bpf.c": BAD_C})
    with pytest.raises(CompileError) as info:
        build(root, vmlinux_h=vmlinux_h)
    err = info.value
    assert err.diagnostics == (
        "bad.bpf.c:10:9: error: use of undeclared identifier 'undeclared_thing'",
    )
    assert err.message.splitlines() == [
        "compile bad.bpf.c: 1 error",
        "bad.bpf.c:10:9: error: use of undeclared identifier 'undeclared_thing'",
    ]
    assert "return undeclared_thing" in err.output  # clang's full words are kept as data
    assert not (root / ".ebpm" / "bad.bpf.o").exists()


def test_compiler_error_through_the_cli(
    make_package: Callable[..., Path], vmlinux_h: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_package("bad", {"bad.bpf.c": BAD_C})
    result = ebpm(capsys, "build", str(root), "--vmlinux", str(vmlinux_h))
    assert result.code == 1
    lines = result.err.splitlines()
    assert "error: compile bad.bpf.c: 1 error" in lines
    assert "bad.bpf.c:10:9: error: use of undeclared identifier 'undeclared_thing'" in lines
    assert "hint: fix the source and run `ebpm build` again" in lines
    assert len(lines) <= 5


@pytest.mark.parametrize(
    ("present", "hint"),
    [
        ((), "apt-get install clang"),
        (("clang",), "apt-get install llvm"),
        (("clang", "llvm-strip"), "apt-get install bpftool"),
    ],
)
def test_missing_tool_gives_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    present: tuple[str, ...], hint: str,
) -> None:
    init_package("pkg", directory=tmp_path / "pkg")
    monkeypatch.setenv("PATH", str(_tools_dir(tmp_path, *present)))
    with pytest.raises(ToolMissingError) as info:
        build(tmp_path / "pkg")  # no vmlinux.h given: bpftool must generate one
    assert info.value.hint == hint
    result = ebpm(capsys, "build", str(tmp_path / "pkg"))
    assert result.code == 1
    assert f"hint: {hint}" in result.err.splitlines()


def test_missing_event_type_and_source(make_package: Callable[..., Path], vmlinux_h: Path) -> None:
    source = BAD_C.replace("undeclared_thing + 1", "0").replace(
        "char LICENSE", "struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096);"
        " } events SEC(\".maps\");\nchar LICENSE"
    )
    root = make_package("ev", {"ev.bpf.c": source}, '[events]\nevents = "struct nothere"\n')
    with pytest.raises(BuildError, match="event type nothere: not in the object's BTF"):
        build(root, vmlinux_h=vmlinux_h)
    empty = make_package("empty")
    with pytest.raises(BuildError, match="source empty.bpf.c not found"):
        build(empty, vmlinux_h=vmlinux_h)
    with pytest.raises(BuildError, match="does not exist"):
        build(root, vmlinux_h=root / "missing-vmlinux.h")


def test_a_source_outside_the_package_by_absolute_or_relative_path(
    make_package: Callable[..., Path], vmlinux_h: Path
) -> None:
    """`[build] source` naming another package's file builds, written either way, to the same
    object (an absolute path ended in relative_to's ValueError)."""
    source = BAD_C.replace("undeclared_thing + 1", "0")
    a = make_package("a", {"a.bpf.c": source})
    objects = []
    for spelling in (str(a / "a.bpf.c"), "../a/a.bpf.c"):
        b = make_package(f"b{len(objects)}", toml=f'[build]\nsource = "{spelling}"\n')
        objects.append(build(b, vmlinux_h=vmlinux_h).object_path.read_bytes())
    assert objects[0] == objects[1]


def test_vmlinux_header_is_generated_once_and_cached(tmp_path: Path) -> None:
    first = vmlinux_header(cache_dir=tmp_path)
    assert first.name == "vmlinux.h" and first.parent.parent == tmp_path
    assert len(first.parent.name) == 64  # keyed by the sha256 of the kernel's BTF
    assert "#ifndef __VMLINUX_H__" in first.read_text()[:200]
    stamp = first.stat().st_mtime_ns
    assert vmlinux_header(cache_dir=tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir()] == ["vmlinux.h"]  # no temp files left
