"""The text form of what a run needs of a package's config (ebpm.loadtime): what `ebpm build`
writes, what `ebpm run DIR` runs from, the config.json it names, and every malformed form
refused."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from ebpm import loadtime
from ebpm.errors import ManifestError
from ebpm.package import (
    ArgSpec,
    EventSpec,
    MapSpec,
    MetricSpec,
    PackageConfig,
    ProgramSpec,
    Requirements,
)
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
        ArgSpec("targ_comm", "comm", "str", 16, "", "the command", 16),
        ArgSpec("targ_failed", "failed", "bool", 1, False, "failed opens only", -1),
        ArgSpec("min_ms", "min", "float", 8, 0.5, "at least this long", 24),
    ),
    maps=(MapSpec("start", "hash", 4, 16, 10240, "u32", "args_t"),
          MapSpec("events", "ringbuf", 0, 0, 262144)),
    events=(EventSpec("events", "event"),),
    requirements=Requirements("5.8", True, ("x86_64", "aarch64")),
    display={"unit": "usecs", "results": ["hist"], "fields": {"daddr": "ip", "fname": "str"}},
    metrics=(MetricSpec("hist", "ebpm_hist", "histogram", "how long"),),
)
DATA = CONFIG.to_json()  # the config.json the build writes

TEXT = f"""\
ebpm-loadtime 2
config {len(DATA)} {zlib.crc32(DATA):08x}
name opensnoop
program enter_open tracepoint/syscalls/sys_enter_open tracepoint syscalls/sys_enter_open - 1
program exit_fb tp_btf/sys_exit tracing sys_exit exit 1
program exit_raw raw_tp/sys_exit raw_tracepoint sys_exit exit 0
arg targ_tgid pid int 4 0 0
arg targ_uid uid uint 4 8 4294967295
arg targ_comm comm str 16 16 -
arg targ_failed failed bool 1 -1 0
arg min_ms min float 8 24 0.5
map start hash 4 16 10240 u32 args_t
map events ringbuf 0 0 262144 - -
event events event
require 5.8 1 x86_64,aarch64
unit usecs
result hist
field daddr ip
field fname str
end
"""


def test_the_text_form_of_a_config_and_back() -> None:
    assert loadtime.render(CONFIG, DATA) == TEXT
    part = loadtime.parse(TEXT)
    assert part == loadtime.from_config(CONFIG, DATA)
    # what the run needs, as the config says it
    for name in ("name", "programs", "maps", "events", "requirements", "display"):
        assert getattr(part, name) == getattr(CONFIG, name), name
    assert [type(a.default) for a in part.args] == [type(a.default) for a in CONFIG.args]
    # a flag's help is config.json's (`-- -h`), as are the description and the metrics
    assert [replace(a, help="") for a in CONFIG.args] == list(part.args)
    assert not hasattr(part, "description") and not hasattr(part, "metrics")
    assert loadtime.parse(TEXT.encode()) == part


def test_it_names_the_config_json_it_was_made_from() -> None:
    part = loadtime.parse(TEXT)
    assert loadtime.describes(part, DATA)
    # any edit of config.json (a space, a flag's help, the description) is another file
    for edited in (DATA + b" ", DATA.replace(b"the command", b"the comman_"),
                   replace(CONFIG, description="Trace open() calls").to_json(), b""):
        assert not loadtime.describes(part, edited)


def test_a_display_or_requirements_left_empty() -> None:
    config = replace(CONFIG, requirements=Requirements(), display={}, maps=(), events=(),
                     args=())
    data = config.to_json()
    text = loadtime.render(config, data)
    assert text is not None and "\nrequire - 1 -\nend\n" in text
    assert loadtime.parse(text) == loadtime.from_config(config, data)


@pytest.mark.parametrize("config", [
    replace(CONFIG, programs=()),  # the run takes them from the object
    replace(CONFIG, programs=(replace(CONFIG.programs[0], section="kprobe/a b"),)),
    replace(CONFIG, programs=(replace(CONFIG.programs[0], attach="-"),)),
    replace(CONFIG, args=(replace(CONFIG.args[0], flag="pïd"),)),
    replace(CONFIG, args=(replace(CONFIG.args[0], size=1 << 20),)),
    replace(CONFIG, args=(replace(CONFIG.args[2], default="a b"),)),
    replace(CONFIG, args=(replace(CONFIG.args[2], default="-"),)),
    replace(CONFIG, args=(replace(CONFIG.args[4], default=1),)),  # an int where a float goes
    replace(CONFIG, maps=(replace(CONFIG.maps[0], value_type="struct args"),)),
    replace(CONFIG, requirements=Requirements(arch=("x86,64",))),
    replace(CONFIG, display={"unit": "micro seconds"}),
], ids=["no programs", "a space", "a literal -", "non-ASCII", "too large", "a default with a "
        "space", "a default -", "a default's type", "a map type with a space", "an arch with a "
        "comma", "a unit with a space"])
def test_a_config_the_form_cannot_carry_is_not_written(config: PackageConfig) -> None:
    assert loadtime.render(config, config.to_json()) is None


def _with(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new)


_CONFIG_LINE = TEXT.splitlines()[1]
MALFORMED = [
    TEXT[:-4],  # truncated: no `end`
    TEXT[:TEXT.index("arg targ_uid")],  # cut at a line's start
    TEXT[:TEXT.index("arg targ_uid") + 9] + "\nend\n",  # cut mid-line
    TEXT + "end\n",  # something after `end`
    _with("ebpm-loadtime 2", "ebpm-loadtime  2"),
    _with("ebpm-loadtime 2\n", ""),
    _with(_CONFIG_LINE + "\n", ""),  # no config line
    _with(_CONFIG_LINE, "config 12 abc"),
    _with(_CONFIG_LINE, "config 12 ABCDEF01"),
    _with(_CONFIG_LINE, "config -12 abcdef01"),
    _with(_CONFIG_LINE, "config 99999999999 abcdef01"),
    _with(_CONFIG_LINE, _CONFIG_LINE + " 1"),
    _with("name opensnoop", "name OpenSnoop"),
    _with("name opensnoop", "name open..snoop"),
    _with("name opensnoop", "name opensnoop extra"),
    _with("exit_fb tp_btf/sys_exit tracing sys_exit exit 1",
          "exit_fb tp_btf/sys_exit tracing sys_exit exit 1 1"),  # a field too many
    _with(" exit 0\n", " 0\n"),  # a field too few
    _with(" exit 0\n", " exit 2\n"),
    _with("arg targ_uid uid uint 4 8 4294967295", "arg targ_uid uid uint 4 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid long 4 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 99999999999"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 2147483648"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 65537 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 0 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint -4 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 -2"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 -0"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 04 8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 0x8"),
    _with("arg targ_uid uid uint 4 8", "arg targ_uid uid uint 4 ８"),  # fullwidth digit
    _with("uint 4 8 4294967295", "uint 4 8 -1"),  # a uint's default below 0
    _with("uint 4 8 4294967295", "uint 4 8 18446744073709551616"),
    _with("bool 1 -1 0", "bool 1 -1 false"),
    _with("float 8 24 0.5", "float 8 24 inf"),
    _with("float 8 24 0.5", "float 8 24 nan"),
    _with("float 8 24 0.5", "float 8 24 half"),
    _with("arg targ_uid", "arg 9targ_uid"),
    _with("arg targ_uid", "arg targ-uid"),
    _with("uid uint", "üid uint"),  # non-ASCII
    _with("uid uint", "u\tid uint"),
    _with("map start hash 4 16 10240 u32 args_t", "map start hash 4 16 10240 u32"),
    _with("map start hash 4 16 10240", "map start hash 4 16 4294967296"),
    _with("event events event", "event events"),
    _with("require 5.8 1 x86_64,aarch64\n", ""),  # no require line
    _with("require 5.8 1", "require 5.8 yes"),
    _with("require 5.8 1 x86_64,aarch64", "require 5.8 1 x86_64,,aarch64"),
    _with("require 5.8 1 x86_64,aarch64\n", "require 5.8 1 x86_64,aarch64\n" * 2),
    _with("unit usecs\n", "unit usecs\n" * 2),
    _with("field daddr ip", "field daddr ipv6"),
    _with("field daddr ip", "field daddr"),
    _with("\n", "\r\n"),
    _with("arg targ_tgid", "\narg targ_tgid"),  # an empty line
    _with("event events event\n", "").replace("map start", "event events event\nmap start"),
    _with("unit usecs\n", "").replace("field fname str\n", "field fname str\nunit usecs\n"),
    _with("map start", "program p s t - - 1\nmap start"),  # a program after the flags
    f"ebpm-loadtime 2\n{_CONFIG_LINE}\nname opensnoop\nrequire - 1 -\nend\n",  # no program
    f"ebpm-loadtime 2\n{_CONFIG_LINE}\nname opensnoop\nprogram p {'s' * 600} t - - 1\n"
    "require - 1 -\nend\n",
    f"ebpm-loadtime 2\n{_CONFIG_LINE}\nname opensnoop\n" + "program p s t - - 1\n" * 4000
    + "require - 1 -\nend\n",  # > 64 KiB
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


def test_read_falls_back_on_a_missing_or_other_form_and_refuses_a_garbled_one(
        tmp_path: Path) -> None:
    path = tmp_path / loadtime.FILE
    assert loadtime.read(str(path)) is None  # missing: config.json is read instead
    for other in ("1", "3"):  # an older build's form, or a newer one's: likewise
        path.write_text(TEXT.replace("ebpm-loadtime 2", f"ebpm-loadtime {other}") + "any\n")
        assert loadtime.read(str(path)) is None
    path.write_text(TEXT)
    assert loadtime.read(str(path)) == loadtime.from_config(CONFIG, DATA)
    path.write_text(TEXT[:-10])
    with pytest.raises(ManifestError, match="truncated"):
        loadtime.read(str(path))
    path.unlink()
    path.mkdir()  # unreadable as a file: config.json is read instead
    assert loadtime.read(str(path)) is None
