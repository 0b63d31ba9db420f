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


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('license = 3\n', "package.license must be a string, not int 3"),
        ('description = ["x", 1]\n', "package.description must be a string, not list ['x', 1]"),
        ('authors = "me"\n', "package.authors must be a list of strings, not str 'me'"),
        ('readme = "NOPE.md"\n', "package.readme 'NOPE.md': no such file in {root}"),
        ('[args.targ_pid]\nflag = "--bad flag"\n',
         "[args.targ_pid] flag: '--bad flag' is not a long option name"),
        ('[args.targ_pid]\nflag = 3\n', "[args.targ_pid] flag must be a string, not int 3"),
        ('[args.targ_pid]\nflag = "h"\n', "[args.targ_pid] flag: 'h' is not a long option name"),
        ('[args.targ_pid]\nflag = "-p"\n', "[args.targ_pid] flag: '-p' is not a long option name"),
        ('[args.targ_pid]\nhelp = 1\n', "[args.targ_pid] help must be a string, not int 1"),
        ('[args.targ_pid]\ncolor = "x"\n', "[args.targ_pid]: only `flag` and `help` may be set"),
        ('[events]\nevents = 3\n', "[events] events must be a string, not int 3"),
        ('[build]\narch = "vax"\n', "[build] arch: 'vax' is not an architecture libbpf knows"),
        ('[build]\narch = "x86_64"\n',
         "[build] arch: 'x86_64' is not an architecture libbpf knows\n"
         'hint: write "x86", libbpf\'s name for x86_64'),
        ('[build]\narch = 7\n', "[build] arch must be a string, not int 7"),
        ('[build]\ncflags = "-DX"\n', "[build] cflags must be a list of strings, not str '-DX'"),
        ('[build]\nsource = 1\n', "[build] source must be a string, not int 1"),
        ('[build]\noptimize = true\n', "[build]: unknown key(s) optimize"),
        ('[build\n', "Expected ']' at the end of a table declaration (at line 4, column 7)"
         "\nhint: ebpm.toml is TOML (toml.io): mend it there; docs/authoring.md shows every "
         "table"),
    ],
)
def test_ebpm_toml_mistakes_name_the_file_and_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], toml: str, message: str
) -> None:
    """Every field of ebpm.toml has its type checked (and flags, arch and readme their value),
    before anything is compiled or written, in one line naming the file and the field."""
    root = tmp_path / "bad"
    root.mkdir()
    (root / "bad.bpf.c").write_text(BAD_C.replace("undeclared_thing + 1", "targ_pid").replace(
        "char LICENSE", "const volatile int targ_pid = 0;\nchar LICENSE"))
    (root / "ebpm.toml").write_text('[package]\nname = "bad"\nversion = "1.0.0"\n' + toml)
    r = ebpm(capsys, "build", str(root))
    assert r.code == 1
    error, hint = r.err.splitlines()
    expected = (f"error: {root / 'ebpm.toml'}: " + message.format(root=root)).splitlines()
    assert error == expected[0]
    assert hint == expected[1] if len(expected) > 1 else hint.startswith("hint: ")
    assert not (root / ".ebpm").exists()


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
