"""Reading sections out of an ELF64 BPF object (little or big endian) without any library."""

from __future__ import annotations

import struct

from ebpm.errors import LoadError

__all__ = ["is_elf", "sections"]

_MAGIC = b"\x7fELF"


def is_elf(data: bytes) -> bool:
    return data[:4] == _MAGIC


def sections(data: bytes) -> dict[str, bytes]:
    """Every section of the object by name (NOBITS sections such as .bss map to b"")."""
    if not is_elf(data):
        raise LoadError(
            "object: not an ELF file", hint="pass a .bpf.o compiled with clang -target bpf"
        )
    if data[4] != 2:
        raise LoadError("object: not a 64-bit ELF file (BPF objects are ELF64)")
    end = "<" if data[5] == 1 else ">"
    try:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        headers = []
        for i in range(shnum):
            name, kind, _flags, _addr, offset, size = struct.unpack_from(
                end + "IIQQQQ", data, shoff + i * shentsize
            )
            headers.append((name, kind, offset, size))
        _, _, str_off, str_size = headers[shstrndx]
        names = data[str_off : str_off + str_size]
        out: dict[str, bytes] = {}
        for name_off, kind, offset, size in headers:
            name = names[name_off : names.index(b"\0", name_off)].decode()
            out[name] = b"" if kind == 8 else data[offset : offset + size]  # 8: SHT_NOBITS
        return out
    except (struct.error, ValueError, IndexError) as err:
        raise LoadError(f"object: malformed ELF section table: {err}") from err
