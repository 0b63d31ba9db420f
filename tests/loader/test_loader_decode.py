"""Event decoding on the real kernel: a tracepoint sends one struct with every kind of field."""

from __future__ import annotations

import os

import pytest

from ebpm.loader.btf import Btf
from ebpm.loader.decode import compile_decoder
from ebpm.run import load_path, run_object

pytestmark = pytest.mark.kernel


def test_every_kind_decodes_from_the_ring_buffer(built, trigger, collector) -> None:
    from tests.loader.conftest import require_bpf

    require_bpf()
    pkg = load_path(built("kinds"))
    args = ["--pid", str(os.getpid()), "--delta", "-1", "--label", "hello"]
    with trigger(os.getppid):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf, args=args, max_events=1,
                             duration=10, sink=collector)
    assert summary.stopped_by == "max-events"
    event = collector.events[0]
    assert event == {
        "u8": 250, "s8": -5, "u16": 65000, "s16": -300, "u32": 3999999999, "s32": -70000,
        "u64": 18000000000000000000, "s64": -9000000000000000000,
        "comm": event["comm"], "word": "hello", "arr": [1, 2, 3],
        "in": {"a": 7, "b": -8}, "ins": [{"a": 9, "b": 10}, {"a": 11, "b": -12}],
        "color": "BLUE", "bf_u": 5, "bf_s": -3, "bf_one": 1, "flag": True,
        "whole": 0x00020001, "halves": [1, 2], "pid": os.getpid(), "big": (1 << 100) + 5,
    }
    assert isinstance(event["comm"], str) and event["comm"]
    assert list(collector.session.fields)[:3] == ["u8", "s8", "u16"]


def test_decoder_is_one_unpack_with_the_struct_size(built) -> None:
    pkg = load_path(built("kinds"))
    btf = Btf.parse(pkg.btf or pkg.object)
    decoder = compile_decoder(btf, btf.find("event").id)
    assert decoder.source.count("_unpack(") == 1
    assert decoder.size == btf.sizeof(btf.find("event").id)
    short = decoder.decode(b"\xfa")  # short records are zero-padded, not an error
    assert short["u8"] == 250 and short["comm"] == "" and short["color"] == 0


def test_column_widths_come_from_the_field_types(built) -> None:
    """The live table sizes each column for the widest value its type can print."""
    pkg = load_path(built("kinds"))
    btf = Btf.parse(pkg.btf or pkg.object)
    decoder = compile_decoder(btf, btf.find("event").id)
    widths = dict(zip(decoder.fields, decoder.widths, strict=True))
    assert (widths["u8"], widths["s8"], widths["u16"], widths["s16"]) == (3, 4, 5, 6)
    assert (widths["u32"], widths["s32"], widths["u64"], widths["s64"]) == (10, 11, 20, 20)
    assert widths["comm"] == 15  # char comm[16]: at most 15 characters
    assert widths["arr"] == 0 and widths["in"] == 0  # lists and structs: sized by their values


def test_decoders_are_made_without_the_builtin_compile(built, tmp_path) -> None:
    """A decoder's text goes to exec() as it is: compile()'s first call in a process makes the
    ast module's node types (1.2 ms on a run's way to its first event). Its code still names
    the type in tracebacks."""
    import subprocess
    import sys

    pkg = load_path(built("kinds"))
    script = (
        "import builtins, sys\n"
        "from ebpm.loader.btf import Btf\n"
        "from ebpm.loader.decode import batch_decoder, compile_decoder\n"
        "def refuse(*args, **kwargs):\n"  # (imported first: a module without .pyc is compiled)
        "    raise AssertionError('compile() called')\n"
        "builtins.compile = refuse\n"
        "btf = Btf.parse(open(sys.argv[1], 'rb').read())\n"
        "event = btf.find('event').id\n"
        "one, batch = compile_decoder(btf, event), batch_decoder(btf, event, perf=True)\n"
        "print(one.decode(b'\\xfa')['u8'], one.decode.__code__.co_filename,\n"
        "      batch.decode.__code__.co_filename, sep='|')\n"
    )
    btf_file = tmp_path / "kinds.btf"
    btf_file.write_bytes(pkg.btf or pkg.object)
    out = subprocess.run([sys.executable, "-c", script, str(btf_file)], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "250|<decoder struct event>|<batch decoder struct event>"
