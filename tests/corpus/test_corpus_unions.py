"""Unions on bcc's own event structs: an address kept as `__u32` or `__u8[16]` /
`unsigned __int128` beside an `af` field reads as one address (tcpconnect, tcptracer), and a
package's `show` hint picks one member of a union (ebpm.toml `[display.fields]`).

tcpconnect and tcptracer hook kprobes, which this kernel lacks: they are built from their
unmodified sources as a user would (`ebpm build`), and their records are decoded from the
built package's own BTF and printed by `ebpm run`'s table printer; the bytes are what the BPF
side writes (addresses in network order).
"""

from __future__ import annotations

import io
import ipaddress
import json
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.corpus.conftest import CORPUS, ebpm_cli, package_dir

TOOLS = CORPUS / "libbpf-tools"
AF_INET, AF_INET6 = 2, 10


def built(tmp_path: Path, vmlinux_h: Path, name: str, extra: str = "") -> Path:
    files = [TOOLS / f"{name}.bpf.c", TOOLS / f"{name}.h", TOOLS / "maps.bpf.h"]
    pkg = package_dir(tmp_path / name, files,
                      f'[package]\nname = "{name}"\nversion = "0.1.0"\nlicense = "GPL-2.0"\n'
                      + extra)
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux_h))
    return pkg


def decoders(pkg: Path, name: str) -> tuple[Any, Any, Any]:
    """The per-record and the batch decoder of the package's `struct event`, with its hints."""
    from ebpm.loader.btf import Btf, Kind
    from ebpm.loader.decode import batch_decoder, compile_decoder
    from ebpm.transfer.formats import raw_btf

    sidecar = pkg / ".ebpm" / f"{name}.btf"
    obj = (pkg / ".ebpm" / f"{name}.bpf.o").read_bytes()
    btf = Btf.parse(sidecar.read_bytes() if sidecar.exists() else raw_btf(obj))
    event = btf.find("event", Kind.STRUCT)
    assert event is not None
    hints = json.loads((pkg / ".ebpm" / "config.json").read_text()).get("display", {})
    fields = hints.get("fields")
    return (compile_decoder(btf, event.id, hints=fields),
            batch_decoder(btf, event.id, hints=fields),
            batch_decoder(btf, event.id, hints=fields, perf=True))


def decode_both(decoders: tuple[Any, Any, Any], record: bytes) -> dict[str, Any]:
    """`record` decoded one by one, and by the batch decoders as a ring buffer's record and as
    a perf buffer's sample: all three the same."""
    from ebpm.loader.decode import PERF_HEADER, PERF_RECORD_SAMPLE, RING_HEADER

    single, batch, perf = decoders
    one = single.decode(record)
    buf = (struct.pack("<II", single.size, 0) + record).ljust(batch.stride, b"\0")
    assert RING_HEADER == 8 and batch.decode(buf, single.size) == [one]
    raw = perf.stride - PERF_HEADER  # (u32 size and the record, padded to 8)
    sample = struct.pack("<IHHI", PERF_RECORD_SAMPLE, 0, perf.stride, raw) + record.ljust(
        raw, b"\0")
    assert perf.decode(sample * 2, PERF_RECORD_SAMPLE) == [one, one]
    return one


def printed(decoder: Any, events: list[dict[str, Any]]) -> list[str]:
    """What `ebpm run` prints for these events: the table printer, as the CLI sets it up."""
    from ebpm.cli.printers import TablePrinter

    out = io.StringIO()
    printer = TablePrinter(out)
    printer.fields, printer.type_widths = decoder.fields, decoder.widths
    for event in events:
        printer.event(event)
    return [line.split() for line in out.getvalue().splitlines()]


def v4(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, text)


def v6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def tcpconnect_record(size: int, af: int, saddr: bytes, daddr: bytes) -> bytes:
    # struct event { union {__u32 saddr_v4; __u8 saddr_v6[16];}; union {daddr...};
    #   char task[16]; __u64 ts_us; __u32 af, pid, uid; __u16 sport, dport; }
    rec = bytearray(size)
    rec[0:len(saddr)] = saddr
    rec[16:16 + len(daddr)] = daddr
    rec[32:36] = b"curl"
    struct.pack_into("<QIIIHH", rec, 48, 1234, af, 4321, 0, 0, 80)
    return bytes(rec)


def test_tcpconnect_address_unions_read_as_addresses(tmp_path: Path, vmlinux_h: Path) -> None:
    pkg = built(tmp_path, vmlinux_h, "tcpconnect")
    dec = decoders(pkg, "tcpconnect")
    single = dec[0]
    assert single.fields == ("saddr", "daddr", "task", "ts_us", "af", "pid", "uid", "sport",
                             "dport")
    ipv4 = decode_both(dec, tcpconnect_record(single.size, AF_INET, v4("10.1.2.3"),
                                              v4("127.0.0.1")))
    ipv6 = decode_both(dec, tcpconnect_record(single.size, AF_INET6, v6("fe80::1"),
                                              v6("::1")))
    # an IPv4-mapped IPv6 address stays IPv6 when af says so (its last 12 bytes are not zero)
    mapped = decode_both(dec, tcpconnect_record(single.size, AF_INET6, v6("::ffff:10.0.0.1"),
                                                v6("::1")))
    assert {k: ipv4[k] for k in ("saddr", "daddr", "task", "af", "pid", "dport")} == {
        "saddr": "10.1.2.3", "daddr": "127.0.0.1", "task": "curl", "af": AF_INET,
        "pid": 4321, "dport": 80}
    assert (ipv6["saddr"], ipv6["daddr"]) == ("fe80::1", "::1")
    assert ipaddress.ip_address(mapped["saddr"]) == ipaddress.ip_address("::ffff:10.0.0.1")
    assert not {"saddr_v4", "saddr_v6", "daddr_v4", "daddr_v6"} & set(ipv4)
    header, row4, row6, _ = printed(single, [ipv4, ipv6, mapped])
    assert header[:3] == ["SADDR", "DADDR", "TASK"]
    assert row4[:3] == ["10.1.2.3", "127.0.0.1", "curl"]
    assert row6[:3] == ["fe80::1", "::1", "curl"]


def tcptracer_record(size: int, af: int, saddr: bytes, daddr: bytes) -> bytes:
    # struct event { union {__u32 saddr_v4; unsigned __int128 saddr_v6;}; union {daddr...};
    #   char task[16]; __u64 ts_us; __u32 af, pid, uid, netns; __u16 dport, sport;
    #   __u8 type; }
    rec = bytearray(size)
    rec[0:len(saddr)] = saddr
    rec[16:16 + len(daddr)] = daddr
    rec[32:36] = b"nc\0\0"
    struct.pack_into("<QIIIIHHB", rec, 48, 99, af, 77, 0, 0, 8080, 40000, 1)
    return bytes(rec)


def test_tcptracer_int128_address_unions(tmp_path: Path, vmlinux_h: Path) -> None:
    pkg = built(tmp_path, vmlinux_h, "tcptracer")
    dec = decoders(pkg, "tcptracer")
    single = dec[0]
    assert single.fields[:3] == ("saddr", "daddr", "task")
    event = decode_both(dec, tcptracer_record(single.size, AF_INET6, v6("2001:db8::7"),
                                              v6("::1")))
    assert (event["saddr"], event["daddr"], event["task"]) == ("2001:db8::7", "::1", "nc")
    event = decode_both(dec, tcptracer_record(single.size, AF_INET, v4("192.168.0.9"),
                                              v4("127.0.0.1")))
    assert (event["saddr"], event["daddr"], event["pid"]) == ("192.168.0.9", "127.0.0.1", 77)


def test_show_hint_picks_the_union_member(tmp_path: Path, vmlinux_h: Path) -> None:
    """`saddr_v6 = "show"`: the member named, read as inference says (a 16-byte `*addr*`
    field: an address, v4 or v6 by `af`); the union left alone prints as inferred."""
    pkg = built(tmp_path, vmlinux_h, "tcptracer",
                '\n[display.fields]\nsaddr_v6 = "show"\n')
    dec = decoders(pkg, "tcptracer")
    single = dec[0]
    assert single.fields[:3] == ("saddr_v6", "daddr", "task")
    event = decode_both(dec, tcptracer_record(single.size, AF_INET6, v6("2001:db8::7"),
                                              v6("::1")))
    assert (event["saddr_v6"], event["daddr"]) == ("2001:db8::7", "::1")
    assert "saddr_v4" not in event and "saddr" not in event
    header, row = printed(single, [event])
    assert header[:2] == ["SADDR_V6", "DADDR"] and row[:2] == ["2001:db8::7", "::1"]


def test_show_hint_overrides_the_enum_choice(tmp_path: Path, vmlinux_h: Path) -> None:
    """mountsnoop's union is picked by its `op` enum; a `show` hint on a nested path wins."""
    pkg = package_dir(tmp_path / "mountsnoop",
                      [TOOLS / f for f in ("mountsnoop.bpf.c", "mountsnoop.h", "compat.bpf.h",
                                           "maps.bpf.h", "core_fixes.bpf.h")],
                      '[package]\nname = "mountsnoop"\nversion = "0.1.0"\n'
                      '[display.fields]\n"umount" = "show"\n')
    ebpm_cli("build", str(pkg), "--vmlinux", str(vmlinux_h))
    single, *_ = decoders(pkg, "mountsnoop")
    record = bytearray(single.size)
    struct.pack_into("<i", record, 24, 1)  # op = MOUNT, which alone would pick `mount`
    event = single.decode(bytes(record))
    assert event["op"] == "MOUNT"
    assert "umount" in event and "mount" not in event and "fsopen" not in event


def test_show_hint_is_checked() -> None:
    from ebpm.errors import ManifestError
    from ebpm.package import PackageConfig

    config = PackageConfig.from_dict({"name": "x", "version": "1.0.0",
                                      "display": {"fields": {"saddr_v6": "show"}}})
    assert config.display["fields"] == {"saddr_v6": "show"}
    with pytest.raises(ManifestError, match="is not a hint"):
        PackageConfig.from_dict({"name": "x", "version": "1.0.0",
                                 "display": {"fields": {"saddr_v6": "shown"}}})

