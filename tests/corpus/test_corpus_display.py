"""Display hints and map draining, on the corpus programs' own BTF and maps."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from ebpm.errors import ManifestError
from ebpm.loader import display
from ebpm.package import PackageConfig
from tests.corpus.conftest import CORPUS, LOADED_NAMES, ebpm_cli, package_dir


def test_values() -> None:
    assert display.strings(b"/bin/echo\0one\0two words\0\0\0") == ["/bin/echo", "one",
                                                                    "two words"]
    assert display.ip_text(bytes([127, 0, 0, 1]) + bytes(12)) == "127.0.0.1"
    assert display.ip_text(bytes([127, 0, 0, 1]) + bytes(12), display.AF_INET) == "127.0.0.1"
    v6 = bytes(15) + b"\x01"
    assert display.ip_text(v6, display.AF_INET6) == "::1"
    assert display.ip_text(bytes([10, 1, 2, 3])) == "10.1.2.3"
    assert display.union_member("MOUNT", ["mount", "umount"]) == "mount"
    assert display.union_member("OP_UMOUNT", ["mount", "umount"]) == "umount"
    assert display.union_member("FSOPEN", ["mount"]) is None
    assert display.hex_text(255) == "0xff" and display.hex_text([1, 2]) == "0102"


def test_units_and_scratch_maps() -> None:
    assert display.unit_for("usecs", {"targ_ms": False}) == "usecs"
    assert display.unit_for("usecs", {"targ_ms": True}) == "msecs"
    assert display.unit_for("", {}) == "value"
    assert display.unit_for("", {"targ_ns": True}) == "nsecs"
    assert display.unit_for("", {"targ_ms": False, "targ_per_cpu": False}) == "usecs"
    assert display.unit_for("", {"targ_per_cpu": False, "min_us": 0}) == "value"
    assert display.unit_for("kbytes", {"targ_ms": False}) == "kbytes"
    for scratch in ("start", "execs", "args", "infly", "start_ts", "values"):
        assert display.is_scratch_map(scratch), scratch
    for result in ("data", "hists", "counts", "counters", "infos"):
        assert not display.is_scratch_map(result), result


def test_display_declarations_are_checked() -> None:
    good = {"unit": "usecs", "results": ["hists"], "fields": {"args": "strings"}}
    config = PackageConfig.from_dict({"name": "x", "version": "1.0.0", "display": good})
    assert config.display == good
    assert "display" not in json.loads(PackageConfig(name="x", version="1.0.0").to_json())
    for bad, message in (({"colour": 1}, "unknown key"), ({"fields": {"a": "rainbow"}},
                                                          "is not a hint"),
                         ({"results": "hists"}, "list of map names")):
        with pytest.raises(ManifestError, match=message):
            PackageConfig.from_dict({"name": "x", "version": "1.0.0", "display": bad})


@pytest.mark.kernel
def test_draining_a_map_yields_each_key_once(tmp_path: Path, vmlinux_h: Path,
                                             kernel: None) -> None:
    """Deleting while walking makes the kernel restart the walk; the snapshot must not."""
    from ebpm.loader.session import Session
    from ebpm.run.source import load_path

    tools = CORPUS / "libbpf-tools"
    pkg = package_dir(tmp_path / "syscount", [tools / "syscount.bpf.c", tools / "syscount.h",
                                              tools / "maps.bpf.h"],
                      '[package]\nname = "syscount"\nversion = "0.1.0"\n'
                      '[display]\nresults = ["data"]\n')
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux_h))
    LOADED_NAMES.update({"sys_enter", "sys_exit"})
    local = load_path(pkg)
    assert local.object is not None
    with Session.start(local.object, local.config, sidecar_btf=local.btf,
                       rodata=None) as session:
        data = session.obj.map("data")
        keys = [struct.pack("<I", 100000 + i) for i in range(600)]
        for key in keys:
            data.update(key, bytes(data.value_size))
        (snap,) = session.snapshot_maps(clear=True)
        # the bpf() calls of the walk itself re-create their syscall's key behind it
        every = [k for k, _ in snap.rows]
        assert len(every) == len(set(every))
        seen = [k for k in every if k >= 100000]
        assert len(seen) == len(keys)
        assert not [k for k in data.keys() if struct.unpack("<I", k)[0] >= 100000]


def test_hints_in_both_decoders(tmp_path: Path, vmlinux_h: Path) -> None:
    """execsnoop's `struct event` from its BTF sidecar: the per-record decoder and the batch
    decoder (ring buffers read from memory) both apply the declared and inferred hints."""
    from ebpm.loader.btf import Btf, Kind
    from ebpm.loader.decode import RING_HEADER, batch_decoder, compile_decoder

    tools = CORPUS / "libbpf-tools"
    pkg = package_dir(tmp_path / "execsnoop", [tools / "execsnoop.bpf.c", tools / "execsnoop.h"],
                      '[package]\nname = "execsnoop"\nversion = "0.1.0"\n'
                      '[display.fields]\nargs = "strings"\n')
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux_h))
    from ebpm.transfer.formats import raw_btf

    sidecar = pkg / ".ebpm" / "execsnoop.btf"
    obj = (pkg / ".ebpm" / "execsnoop.bpf.o").read_bytes()
    btf = Btf.parse(sidecar.read_bytes() if sidecar.exists() else raw_btf(obj))
    event = btf.find("event", Kind.STRUCT)
    assert event is not None
    hints = json.loads((pkg / ".ebpm" / "config.json").read_text())["display"]["fields"]
    single = compile_decoder(btf, event.id, hints=hints)
    record = bytearray(single.size)
    struct.pack_into("<iiiiiI", record, 0, 7, 1, 0, 0, 3, 22)
    record[24:28] = b"echo"
    args = b"/bin/echo\0one\0two words\0"
    record[40:40 + len(args)] = args
    want = {"pid": 7, "ppid": 1, "comm": "echo", "args": ["/bin/echo", "one", "two words"]}
    decoded = single.decode(bytes(record))
    assert {k: decoded[k] for k in want} == want
    batch = batch_decoder(btf, event.id, hints=hints)
    header = struct.pack("<II", single.size, 0)
    buf = (header + bytes(record)).ljust(batch.stride, b"\0") * 2
    both = batch.decode(buf, single.size)
    assert len(both) == 2 and all({k: d[k] for k in want} == want for d in both)
    assert RING_HEADER == 8
