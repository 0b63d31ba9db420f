"""The load-time text form of a package's config (ebpm.loadtime): what `ebpm build` writes, what
`ebpm run DIR` starts libbpf's load from, and every malformed form refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm import loadtime
from ebpm.errors import ManifestError
from ebpm.package import ArgSpec, PackageConfig, ProgramSpec
from ebpm.record import replace

CONFIG = PackageConfig(
    name="opensnoop",
    version="0.1.0",
    description="Trace open()",
    programs=(
        ProgramSpec("enter_open", "tracepoint/syscalls/sys_enter_open", "tracepoint",
                    "syscalls/sys_enter_open"),
        ProgramSpec("exit_fb", "tp_btf/sys_exit", "tracing", "sys_exit", "exit", True),
        ProgramSpec("exit_raw", "raw_tp/sys_exit", "raw_tracepoint", "sys_exit", "exit", False),
    ),
    args=(
        ArgSpec("targ_tgid", "pid", "int", 4, 0, "trace this process id only", 0),
        ArgSpec("targ_uid", "uid", "uint", 4, 4294967295, "trace this user id only", 8),
        ArgSpec("targ_comm", "comm", "str", 16, "a b", "the command", 16),
        ArgSpec("targ_failed", "failed", "bool", 1, False, "failed opens only", -1),
    ),
)

TEXT = """\
ebpm-loadtime 1
name opensnoop
program enter_open tracepoint/syscalls/sys_enter_open tracepoint syscalls/sys_enter_open - 1
program exit_fb tp_btf/sys_exit tracing sys_exit exit 1
program exit_raw raw_tp/sys_exit raw_tracepoint sys_exit exit 0
arg targ_tgid pid int 4 0
arg targ_uid uid uint 4 8
arg targ_comm comm str 16 16
arg targ_failed failed bool 1 -1
end
"""


def test_the_text_form_of_a_config_and_back() -> None:
    assert loadtime.render(CONFIG) == TEXT
    part = loadtime.parse(TEXT)
    assert part == loadtime.from_config(CONFIG)
    assert part.name == "opensnoop" and part.programs == CONFIG.programs
    # a flag's layout only: its default and help are config.json's
    assert [(a.name, a.flag, a.type, a.size, a.offset, a.default, a.help) for a in part.args] == [
        (a.name, a.flag, a.type, a.size, a.offset, 0, "") for a in CONFIG.args]
    loadtime.check(part, CONFIG, where="DIR")
    assert loadtime.parse(TEXT.encode()) == part


@pytest.mark.parametrize("config", [
    replace(CONFIG, programs=()),  # the run takes them from the object
    replace(CONFIG, programs=(replace(CONFIG.programs[0], section="kprobe/a b"),)),
    replace(CONFIG, programs=(replace(CONFIG.programs[0], attach="-"),)),
    replace(CONFIG, args=(replace(CONFIG.args[0], flag="pïd"),)),
    replace(CONFIG, args=(replace(CONFIG.args[0], size=1 << 20),)),
], ids=["no programs", "a space", "a literal -", "non-ASCII", "too large"])
def test_a_config_the_form_cannot_carry_is_not_written(config: PackageConfig) -> None:
    assert loadtime.render(config) is None


MALFORMED = [
    TEXT[:-4],  # truncated: no `end`
    TEXT[:TEXT.index("arg targ_uid")],  # cut at a line's start
    TEXT[:TEXT.index("arg targ_uid") + 9] + "\nend\n",  # cut mid-line
    TEXT + "end\n",  # something after `end`
    TEXT.replace("ebpm-loadtime 1", "ebpm-loadtime  1"),
    TEXT.replace("ebpm-loadtime 1\n", ""),
    TEXT.replace("name opensnoop", "name OpenSnoop"),
    TEXT.replace("name opensnoop", "name open..snoop"),
    TEXT.replace("name opensnoop", "name opensnoop extra"),
    TEXT.replace("exit_fb tp_btf/sys_exit tracing sys_exit exit 1",
                 "exit_fb tp_btf/sys_exit tracing sys_exit exit 1 1"),  # a field too many
    TEXT.replace(" exit 0\n", " 0\n"),  # a field too few
    TEXT.replace(" exit 0\n", " exit 2\n"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 8 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid long 4 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 99999999999"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 2147483648"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 65537 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 0 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint -4 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 -2"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 -0"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 04 8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 0x8"),
    TEXT.replace("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 ８"),  # fullwidth digit
    TEXT.replace("arg targ_uid", "arg 9targ_uid"),
    TEXT.replace("arg targ_uid", "arg targ-uid"),
    TEXT.replace("uid uint", "üid uint"),  # non-ASCII
    TEXT.replace("uid uint", "u\tid uint"),
    TEXT.replace("\n", "\r\n"),
    TEXT.replace("arg targ_tgid", "\narg targ_tgid"),  # an empty line
    TEXT.replace("program exit_raw raw_tp/sys_exit raw_tracepoint sys_exit exit 0\n", "") + (
        "program exit_raw raw_tp/sys_exit raw_tracepoint sys_exit exit 0\n"),  # out of order
    "ebpm-loadtime 1\nname opensnoop\nend\n",  # no program
    "ebpm-loadtime 1\nname opensnoop\nprogram p " + "s" * 600 + " t - - 1\nend\n",
    "ebpm-loadtime 1\nname opensnoop\n" + "program p s t - - 1\n" * 4000 + "end\n",  # > 64 KiB
    "",
]


@pytest.mark.parametrize("text", MALFORMED, ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_a_malformed_text_form_is_refused(text: str) -> None:
    with pytest.raises(ManifestError) as info:
        loadtime.parse(text, where="DIR/.ebpm/loadtime.txt", hint="run `ebpm build DIR` again")
    assert info.value.message.startswith("DIR/.ebpm/loadtime.txt: ")
    assert "\n" not in info.value.message and info.value.hint == "run `ebpm build DIR` again"


def test_bytes_that_are_not_ascii_are_refused() -> None:
    for data in (TEXT.encode().replace(b"uid uint", b"\xffuid uint"),
                 TEXT.replace("uid", "üid").encode()):
        with pytest.raises(ManifestError, match="not ASCII text"):
            loadtime.parse(data)


def test_read_falls_back_on_a_missing_or_newer_form_and_refuses_a_garbled_one(
        tmp_path: Path) -> None:
    path = tmp_path / loadtime.FILE
    assert loadtime.read(str(path)) is None  # missing: config.json is read instead
    path.write_text(TEXT.replace("ebpm-loadtime 1", "ebpm-loadtime 2") + "anything\n")
    assert loadtime.read(str(path)) is None  # another version of the form: likewise
    path.write_text(TEXT)
    assert loadtime.read(str(path)) == loadtime.from_config(CONFIG)
    path.write_text(TEXT[:-10])
    with pytest.raises(ManifestError, match="truncated"):
        loadtime.read(str(path))
    path.unlink()
    path.mkdir()  # unreadable as a file: config.json is read instead
    assert loadtime.read(str(path)) is None


@pytest.mark.parametrize("changed", [
    replace(CONFIG, name="execsnoop"),
    replace(CONFIG, programs=CONFIG.programs[:2]),
    replace(CONFIG, programs=(replace(CONFIG.programs[0], autoload=False), *CONFIG.programs[1:])),
    replace(CONFIG, args=(replace(CONFIG.args[0], offset=4), *CONFIG.args[1:])),
    replace(CONFIG, args=(replace(CONFIG.args[0], flag="tgid"), *CONFIG.args[1:])),
    replace(CONFIG, args=CONFIG.args[::-1]),
], ids=["name", "a program less", "autoload", "offset", "flag", "order"])
def test_a_config_json_that_disagrees_is_refused(changed: PackageConfig) -> None:
    part = loadtime.parse(TEXT)
    with pytest.raises(ManifestError) as info:
        loadtime.check(part, changed, where="DIR", hint="run `ebpm build DIR` again")
    assert "disagree" in info.value.message and "nothing was attached" in info.value.message
    # what the run does not need before the load may differ (help, defaults, description)
    loadtime.check(part, replace(CONFIG, description="other", args=tuple(
        replace(a, help="other", default=1) for a in CONFIG.args)), where="DIR")
