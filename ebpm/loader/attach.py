"""Attach targets: `--attach PROG=TARGET` strings (`uprobe:BIN:FUNC`, `xdp:IFNAME`...) parsed
and turned into links of a loaded program."""

from __future__ import annotations

from ebpm.errors import UsageError
from ebpm.loader import libbpf
from ebpm.loader.libbpf import links  # noqa: F401 - imported while libbpf loads (`ebpm run`)

__all__ = ["parse_attach_target", "attach_to"]

# kind: how many ':'-separated parts follow it
_PARTS: dict[str, tuple[int, ...]] = {
    "uprobe": (2,), "uretprobe": (2,), "tracepoint": (2,), "raw_tp": (1,), "kprobe": (1,),
    "kretprobe": (1,), "xdp": (1,), "tc": (1, 2),
}


def parse_attach_target(text: str) -> tuple[str, list[str]]:
    """`uprobe:/bin/bash:readline`, `uretprobe:BIN:FUNC`, `tracepoint:CAT:NAME`, `raw_tp:NAME`,
    `kprobe:FUNC`, `kretprobe:FUNC`, `xdp:IFNAME`, `tc:IFNAME[:egress]` -> (kind, parts)."""
    kind, _, rest = text.partition(":")
    if kind in ("uprobe", "uretprobe"):
        binary, _, func = rest.rpartition(":")
        parts = [binary, func] if binary else [rest, ""]
    else:
        parts = rest.split(":") if rest else []
    counts = _PARTS.get(kind)
    if counts is None or len(parts) not in counts or not all(parts[:1]):
        raise UsageError(
            f"attach target {text!r}: not understood",
            hint="use uprobe:BINARY:FUNC, tracepoint:CAT:NAME, raw_tp:NAME, kprobe:FUNC, "
            "xdp:IFNAME or tc:IFNAME[:egress]",
        )
    return kind, parts


def attach_to(prog: libbpf.Program, target: str) -> libbpf.Link:
    """Attach `prog` where `target` (see `parse_attach_target`) says, not by its section."""
    kind, parts = parse_attach_target(target)
    if kind in ("uprobe", "uretprobe"):
        binary, func = parts
        offset = 0
        if func.startswith("0x"):
            offset, func = int(func, 16), ""
        return prog.attach_uprobe(binary, function=func, offset=offset,
                                  retprobe=kind == "uretprobe")
    if kind == "tracepoint":
        return prog.attach_tracepoint(parts[0], parts[1])
    if kind == "raw_tp":
        return prog.attach_raw_tracepoint(parts[0])
    if kind in ("kprobe", "kretprobe"):
        return prog.attach_kprobe(parts[0], retprobe=kind == "kretprobe")
    import socket  # xdp and tc targets only

    try:
        ifindex = socket.if_nametoindex(parts[0])
    except OSError as err:
        raise UsageError(f"attach target {target!r}: no interface {parts[0]!r}") from err
    if kind == "xdp":
        return prog.attach_xdp(ifindex)
    return prog.attach_tc(ifindex, egress=len(parts) > 1 and parts[1] == "egress")
