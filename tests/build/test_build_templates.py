"""`ebpm init` -> `ebpm build` for every template: files, object, config.json, BTF sidecar."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.build.scaffold import TEMPLATES
from ebpm.loader.btf import Btf, Kind
from ebpm.loader.elf import ElfFile
from ebpm.package import PackageConfig, ProjectManifest
from tests.build.conftest import BuiltTemplate

EXPECTED_PROGRAMS = {
    "tracepoint": [("handle_openat", "tracepoint", "syscalls/sys_enter_openat", "")],
    "kprobe": [
        ("handle_unlink", "kprobe", "do_unlinkat", "handle_unlink"),
        ("handle_unlink_tp", "tracepoint", "syscalls/sys_enter_unlinkat", "handle_unlink"),
    ],
    "uprobe": [
        ("handle_getaddrinfo", "uprobe", "libc.so.6:getaddrinfo", ""),
        ("handle_getaddrinfo_ret", "uretprobe", "libc.so.6:getaddrinfo", ""),
    ],
    "ringbuf": [
        ("handle_exec", "tracepoint", "sched/sched_process_exec", ""),
        ("handle_exit", "tracepoint", "sched/sched_process_exit", ""),
    ],
    "hist": [
        ("handle_read", "tracepoint", "syscalls/sys_exit_read", ""),
        ("handle_exit", "tracepoint", "sched/sched_process_exit", ""),
    ],
}

EXPECTED_ARGS = {
    "tracepoint": [("targ_pid", "pid", "int", 4, 0), ("targ_uid", "uid", "int", 4, -1),
                   ("targ_comm", "comm", "str", 16, "")],
    "kprobe": [("targ_pid", "pid", "int", 4, 0)],
    "uprobe": [("targ_pid", "pid", "int", 4, 0)],
    "ringbuf": [("min_duration_ns", "min-duration-ns", "uint", 8, 0)],
    "hist": [("targ_pid", "pid", "int", 4, 0), ("min_bytes", "min-bytes", "uint", 8, 1)],
}


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_init_writes_the_package_files(
    built_templates: dict[str, BuiltTemplate], template: str
) -> None:
    root, _ = built_templates[template]
    name = f"my-{template}"
    for f in (f"{name}.bpf.c", f"{name}.h", "ebpm.toml", "README.md", ".gitignore"):
        assert (root / f).is_file(), f
    source = (root / f"{name}.bpf.c").read_text()
    assert source.startswith("// SPDX-License-Identifier: (GPL-2.0 OR BSD-3-Clause)")
    assert 'SEC("license")' in source and "const volatile" in source
    assert "bpf_ringbuf_reserve" in source
    assert "struct event {" in (root / f"{name}.h").read_text()
    manifest = ProjectManifest.load(root)
    assert (manifest.name, manifest.version) == (name, "0.1.0")
    assert manifest.license == "GPL-2.0 OR BSD-3-Clause"
    assert ".ebpm/" in (root / ".gitignore").read_text()
    assert f"ebpm init {name} --template {template}" in (root / "README.md").read_text()


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_build_writes_object_config_and_sidecar(
    built_templates: dict[str, BuiltTemplate], template: str
) -> None:
    root, result = built_templates[template]
    name = f"my-{template}"
    assert result.object_path == root / ".ebpm" / f"{name}.bpf.o"
    elf = ElfFile(result.object_path.read_bytes())
    assert elf.is_bpf
    names = {s.name for s in elf.sections}
    assert ".BTF" in names and ".BTF.ext" in names
    assert not any(n.startswith(".debug") for n in names), "DWARF must be stripped"
    assert b"/tmp/" not in result.object_path.read_bytes(), "no absolute build paths"

    config = PackageConfig.from_json(result.config_path.read_bytes())
    assert config == result.config
    assert result.config_path.read_bytes() == config.to_json()
    assert config.requirements.btf and config.requirements.arch
    assert config.builder.startswith("ebpm ") and "clang" in config.builder

    # the event type is a local variable's type: not in the object's BTF, so a sidecar
    own = Btf.parse(elf.section_data(elf.section(".BTF")))  # type: ignore[arg-type]
    assert not own.has_type("event")
    assert result.btf_path == root / ".ebpm" / f"{name}.btf"
    sidecar = Btf.parse(result.btf_path.read_bytes())
    event = sidecar.find("event", Kind.STRUCT)
    assert event is not None and event.size > 0
    assert [m.name for m in event.members][0] == "pid"
    assert result.wasm_path is None


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_template_metadata(built_templates: dict[str, BuiltTemplate], template: str) -> None:
    _, result = built_templates[template]
    config = result.config
    got = [(p.name, p.type, p.attach, p.group) for p in config.programs]
    assert got == EXPECTED_PROGRAMS[template]
    assert all(p.autoload for p in config.programs)
    events_map = config.map("events")
    assert events_map is not None and events_map.type == "ringbuf"
    assert events_map.max_entries == 256 * 1024
    assert [(e.map, e.type) for e in config.events] == [("events", "event")]
    args = [(a.name, a.flag, a.type, a.size, a.default) for a in config.args]
    assert args == EXPECTED_ARGS[template]
    assert all(a.help and a.offset >= 0 for a in config.args)


def test_hash_map_types_and_help_text(built_templates: dict[str, BuiltTemplate]) -> None:
    config = built_templates["hist"][1].config
    hists = config.map("hists")
    assert hists is not None
    assert (hists.type, hists.key_type, hists.key_size) == ("hash", "__u32", 4)
    assert (hists.value_type, hists.value_size, hists.max_entries) == ("hist", 8 + 24 * 4, 10240)
    pid = config.args[0]
    assert pid.help == "Histogram only this process id (0: every process)."
    ringbuf = built_templates["ringbuf"][1].config
    assert ringbuf.map("exec_start") is not None
    assert ringbuf.map("exec_start").key_type == "pid_t"  # type: ignore[union-attr]


def test_kprobe_template_prefers_kprobe_with_tracepoint_fallback(
    built_templates: dict[str, BuiltTemplate],
) -> None:
    root, result = built_templates["kprobe"]
    first, second = result.config.programs
    assert first.group == second.group == "handle_unlink"
    assert (first.type, second.type) == ("kprobe", "tracepoint")
    assert "CONFIG_KPROBES" in (root / "my-kprobe.bpf.c").read_text()


def test_init_refuses_existing_directory_and_bad_names(tmp_path: Path) -> None:
    from ebpm.build.scaffold import init_package
    from ebpm.errors import ManifestError, UsageError

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(UsageError, match="already exists"):
        init_package("taken", directory=tmp_path / "taken")
    with pytest.raises(ManifestError, match="not a valid package name"):
        init_package("Bad Name", directory=tmp_path / "bad")
    with pytest.raises(UsageError, match="no template 'nope'"):
        init_package("ok", template="nope", directory=tmp_path / "ok")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "ok").exists()
