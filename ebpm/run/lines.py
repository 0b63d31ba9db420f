"""An iterator program's output as line records, `{"iter": PROGRAM, "line": TEXT}`: what
`ebpm run --json` prints and the agent's `GET .../output` streams.

A line ends where the program wrote a newline (left out of the record). One longer than
LINE_MAX bytes (bpf_seq_write of a blob) comes in pieces, never cut inside a UTF-8
character, each marked `"partial": true` (the next record continues it), as is a last line
without its newline: a reader puts the bytes back together exactly, and at most LINE_MAX
bytes of an unfinished line are ever held. A piece that is not UTF-8 (a binary record
written with bpf_seq_write) has its text with the bad bytes replaced, and its exact bytes
too, in base64: `"bytes": B64`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LINE_MAX", "Lines", "record", "record_bytes"]

LINE_MAX = 64 << 10  # bytes of a line in one record: a longer one comes in pieces


def record(program: str, text: bytes, partial: bool = False) -> dict[str, Any]:
    try:
        item: dict[str, Any] = {"iter": program, "line": text.decode()}
    except UnicodeDecodeError:
        import binascii

        item = {"iter": program, "line": text.decode(errors="replace"),
                "bytes": binascii.b2a_base64(text, newline=False).decode("ascii")}
    if partial:
        item["partial"] = True
    return item


def record_bytes(item: dict[str, Any]) -> bytes:
    """The exact bytes of a record `record` made, its newline put back unless partial."""
    import binascii

    data = (binascii.a2b_base64(str(item["bytes"])) if "bytes" in item
            else str(item.get("line", "")).encode())
    return data if item.get("partial") else data + b"\n"


class Lines:
    """One iterator's output, fed as the kernel hands it over, cut into (text, partial)."""

    def __init__(self) -> None:
        self.held = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        *lines, rest = (self.held + data).split(b"\n")
        out = [(line, False) for line in lines]
        while len(rest) >= LINE_MAX:
            cut = LINE_MAX
            while cut > LINE_MAX - 3 and rest[cut] & 0xC0 == 0x80:  # (not inside a character)
                cut -= 1
            out.append((rest[:cut], True))
            rest = rest[cut:]
        self.held = rest
        return out

    def end(self) -> list[tuple[bytes, bool]]:
        """The last line, if it had no newline (partial: nothing follows it)."""
        held, self.held = self.held, b""
        return [(held, True)] if held else []
