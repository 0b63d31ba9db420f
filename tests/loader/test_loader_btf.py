"""BTF parsing (ebpm.loader.btf): types read as bpftool reads them, decoded when first asked
for, and damaged blobs refused when parsed."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from ebpm.errors import LoadError
from ebpm.loader import btf as btf_module
from ebpm.loader.btf import Btf, Kind

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
# objects compiled by others (tests/corpus: wasm-bpf's and eunomia-bpf's, with their licenses)
OBJECTS = [CORPUS / "wasm-bpf" / "runtime-tests" / "bootstrap.bpf.o",
           *sorted((CORPUS / "eunomia-bpf").glob("*/*.bpf.o"))]


@pytest.mark.parametrize("path", OBJECTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_type_reads_as_bpftool_reads_it(path: Path) -> None:
    if shutil.which("bpftool") is None:
        pytest.fail("bpftool is missing (the bootstrap installs it)")
    dump = json.loads(subprocess.run(["bpftool", "-j", "btf", "dump", "file", str(path)],
                                     capture_output=True, check=True).stdout)
    btf = Btf.parse(path.read_bytes())
    assert len(btf) == len(dump["types"]) + 1  # (and void, id 0)
    for want in dump["types"]:
        t = btf[want["id"]]
        assert Kind.__dict__[want["kind"]] == t.kind, want
        assert (t.name or "(anon)") == want["name"]
        if want["kind"] in ("STRUCT", "UNION"):
            assert [(m.name or "(anon)", m.type, m.bit_offset) for m in t.members] == [
                (m["name"], m["type_id"], m["bits_offset"]) for m in want["members"]]
        if want["kind"] == "DATASEC":
            assert [(m.type, m.bit_offset // 8, m.size) for m in t.members] == [
                (v["type_id"], v["offset"], v["size"]) for v in want["vars"]]
        if want["kind"] in ("PTR", "TYPEDEF", "CONST", "VOLATILE", "VAR", "FUNC"):
            assert t.type == want["type_id"]


def test_a_type_is_decoded_when_first_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded: list[int] = []
    real = btf_module._decode

    def counting(table: object, tid: int) -> object:
        decoded.append(tid)
        return real(table, tid)  # type: ignore[arg-type]

    monkeypatch.setattr(btf_module, "_decode", counting)
    btf = Btf.parse(OBJECTS[0].read_bytes())
    assert decoded == []  # parsing read the headers only
    maps = btf.find(".maps", Kind.DATASEC)
    assert maps is not None and decoded == [maps.id]
    assert btf.find(".maps", Kind.DATASEC) is maps and decoded == [maps.id]  # kept


def _blob(types: bytes, strings: bytes, end: str = "<") -> bytes:
    """A raw BTF blob: the 24-byte header, the types, the strings."""
    return struct.pack(end + "HBBI4I", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                       len(strings)) + types + strings


def _type(name_off: int, kind: int, vlen: int, size_or_type: int, end: str = "<") -> bytes:
    return struct.pack(end + "III", name_off, kind << 24 | vlen, size_or_type)


@pytest.mark.parametrize("end", ["<", ">"], ids=["little-endian", "big-endian"])
def test_a_blob_is_read_in_its_own_byte_order(end: str) -> None:
    strings = b"\0int\0pair\0a\0b\0"
    types = (_type(1, Kind.INT, 0, 4, end) + struct.pack(end + "I", 1 << 24 | 32)
             + _type(5, Kind.STRUCT, 2, 8, end)
             + struct.pack(end + "III", 10, 1, 0) + struct.pack(end + "III", 12, 1, 32))
    btf = Btf.parse(_blob(types, strings, end))
    pair = btf.find("pair")
    assert pair is not None and pair.size == 8
    assert [(m.name, m.type, m.bit_offset) for m in pair.members] == [("a", 1, 0), ("b", 1, 32)]
    assert btf.find("int", Kind.INT) == btf[1] and btf[1].bits == 32


def test_a_type_running_past_the_section_is_refused_when_parsed() -> None:
    strings = b"\0s\0m\0"
    types = _type(1, Kind.STRUCT, 3, 12) + struct.pack("<III", 3, 0, 0)  # 3 members, 1 there
    with pytest.raises(LoadError, match="malformed type data: type 1 runs past the end"):
        Btf.parse(_blob(types, strings))


def test_an_unknown_kind_is_refused_when_parsed() -> None:
    with pytest.raises(LoadError, match=r"unknown BTF type kind 25 \(type id 1\)"):
        Btf.parse(_blob(_type(0, 25, 0, 0), b"\0"))


def test_a_btf_option_that_is_no_btf_is_refused_naming_the_file(tmp_path: Path) -> None:
    """`ebpm run X --btf FILE` with a FILE that is not BTF: one line naming it, and a hint."""
    import subprocess
    import sys

    from tests.loader.conftest import compile_bpf

    obj = compile_bpf(tmp_path, "plain", PLAIN_C)
    ebpm = str(Path(sys.executable).with_name("ebpm"))
    proc = subprocess.run([ebpm, "run", str(obj), "--btf", "/etc/passwd", "--duration", "1"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [
        "error: --btf /etc/passwd: not valid BTF: bad BTF magic (not a BTF blob)",
        "hint: give a raw .btf file, or a BPF object compiled with clang -g"]


PLAIN_C = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("tracepoint/syscalls/sys_enter_getppid")
int plain_getppid(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_a_damaged_btf_sidecar_is_named_with_a_hint(built, tmp_path: Path) -> None:
    """A built package whose NAME.btf is damaged: one line naming the sidecar, and a hint to
    build it again (was "BTF: BTF too short")."""
    import shutil
    import subprocess
    import sys

    pkg = tmp_path / "opensnoop"
    shutil.copytree(built("opensnoop"), pkg)
    (pkg / ".ebpm" / "opensnoop.btf").write_bytes(b"garbage\n")
    ebpm = str(Path(sys.executable).with_name("ebpm"))
    proc = subprocess.run([ebpm, "run", str(pkg), "--duration", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: opensnoop's BTF sidecar (opensnoop.btf) is damaged: BTF too short",
        "hint: build the package again (`ebpm build`), or pull it again"]


def test_a_bare_object_with_damaged_btf_is_named_with_a_hint(tmp_path: Path) -> None:
    """`ebpm run FILE.o` and `ebpm push FILE.o REF` of an object whose .BTF is damaged: one
    line naming the file, and a hint (was "object .BTF: bad BTF magic", no file, no hint).
    push stops before any request (the registry named is never reached)."""
    import os
    import subprocess
    import sys

    from tests.loader.conftest import compile_bpf

    obj = compile_bpf(tmp_path, "plain", PLAIN_C)
    data = bytearray(obj.read_bytes())
    at = data.find(struct.pack("<H", 0xEB9F) + b"\x01")  # the .BTF section's header
    data[at:at + 2] = b"\0\0"
    obj.write_bytes(data)
    ebpm = str(Path(sys.executable).with_name("ebpm"))
    said = [f"error: {obj}: cannot be read as a BPF object (damaged?): .BTF: bad BTF magic "
            "(not a BTF blob)",
            "hint: build it again (`ebpm build`, or clang -O2 -g -target bpf), or pull it again"]
    for args in (["run", str(obj), "--duration", "1"],
                 ["push", str(obj), "127.0.0.1:9/x/plain:1.0.0"]):
        proc = subprocess.run([ebpm, *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "EBPM_HOME": str(tmp_path / "h")})
        assert (proc.returncode, proc.stderr.splitlines()) == (1, said), args
