"""A pure-Python ELF64 reader for BPF objects (either byte order): sections, bytes, symbols."""

from __future__ import annotations

import struct

from ebpm.errors import EbpmError, LoadError
from ebpm.record import record

__all__ = [
    "Section",
    "Symbol",
    "ElfFile",
    "is_elf",
    "sections",
    "SHF_EXECINSTR",
    "STT_FUNC",
    "STT_OBJECT",
]

_MAGIC = b"\x7fELF"
SHF_EXECINSTR = 0x4
SHT_SYMTAB = 2
SHT_NOBITS = 8
STT_OBJECT = 1
STT_FUNC = 2
STB_GLOBAL = 1
STB_WEAK = 2
EM_BPF = 247


@record
class Section:
    """One section header, with its index and resolved name."""

    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int
    entsize: int


@record
class Symbol:
    """One symbol-table entry; `section` is the index of the section it lives in."""

    name: str
    value: int
    size: int
    type: int
    bind: int
    section: int

    @property
    def is_global(self) -> bool:
        return self.bind in (STB_GLOBAL, STB_WEAK)


def is_elf(data: bytes) -> bool:
    return data[:4] == _MAGIC


def sections(data: bytes) -> dict[str, bytes]:
    """Every section of the object by name (NOBITS sections such as .bss map to b"")."""
    elf = ElfFile(data, error=LoadError, hint="pass a .bpf.o compiled with clang -target bpf")
    return {
        s.name: b"" if s.type == SHT_NOBITS else data[s.offset : s.offset + s.size]
        for s in elf.sections
    }


class ElfFile:
    """Parses an ELF64 relocatable object held in memory (either byte order).

    Damage raises `error` (LoadError by default; the build passes BuildError), its message
    prefixed with `where`.
    """

    def __init__(
        self, data: bytes, *, where: str = "object", error: type[EbpmError] = LoadError,
        hint: str = "pass a compiled .bpf.o object",
    ) -> None:
        self.error = error
        try:
            self._parse(data, where, hint)
        except struct.error as err:
            raise error(f"{where}: truncated or damaged ELF ({err})") from err

    def _parse(self, data: bytes, where: str, hint: str) -> None:
        self.data = data
        self.where = where
        if len(data) < 64 or not is_elf(data):
            raise self.error(f"{where}: not an ELF file", hint=hint)
        if data[4] != 2:
            raise self.error(f"{where}: not a 64-bit ELF object", hint="BPF objects are ELF64")
        self.endian = "<" if data[5] == 1 else ">"
        e = self.endian
        (self.machine,) = struct.unpack_from(e + "H", data, 18)
        (shoff,) = struct.unpack_from(e + "Q", data, 40)
        shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 58)
        if shoff == 0 or shentsize < 64 or shoff + shnum * shentsize > len(data):
            raise self.error(f"{where}: truncated or damaged ELF section table")
        raw = []
        for i in range(shnum):
            name_off, stype, flags, _addr, off, size, link, _info, _align, entsize = (
                struct.unpack_from(e + "IIQQQQIIQQ", data, shoff + i * shentsize)
            )
            raw.append((name_off, stype, flags, off, size, link, entsize))
        if shstrndx >= len(raw):
            raise self.error(f"{where}: damaged ELF section-name table")
        strtab_off, strtab_size = raw[shstrndx][3], raw[shstrndx][4]
        self.sections: list[Section] = [
            Section(i, self._cstr(strtab_off, strtab_size, r[0]), *r[1:]) for i, r in enumerate(raw)
        ]
        self._by_name = {s.name: s for s in self.sections}

    def _cstr(self, base: int, limit: int, off: int) -> str:
        if off >= limit:
            return ""
        start = base + off
        end = self.data.find(b"\0", start, base + limit)
        return self.data[start : end if end >= 0 else base + limit].decode("utf-8", "replace")

    @property
    def is_bpf(self) -> bool:
        return self.machine == EM_BPF

    def section(self, name: str) -> Section | None:
        return self._by_name.get(name)

    def section_data(self, section: Section) -> bytes:
        if section.type == SHT_NOBITS:
            return bytes(section.size)
        end = section.offset + section.size
        if end > len(self.data):
            raise self.error(f"{self.where}: section {section.name} runs past the end of the file")
        return self.data[section.offset : end]

    def symbols(self) -> list[Symbol]:
        try:
            return self._symbols()
        except (struct.error, IndexError) as err:
            raise self.error(f"{self.where}: damaged ELF symbol table ({err})") from err

    def _symbols(self) -> list[Symbol]:
        symtab = next((s for s in self.sections if s.type == SHT_SYMTAB), None)
        if symtab is None:
            return []
        strtab = self.sections[symtab.link]
        e = self.endian
        out = []
        data = self.section_data(symtab)
        for pos in range(0, len(data) - 23, 24):
            name_off, info, _other, shndx, value, size = struct.unpack_from(e + "IBBHQQ", data, pos)
            out.append(
                Symbol(
                    name=self._cstr(strtab.offset, strtab.size, name_off),
                    value=value,
                    size=size,
                    type=info & 0xF,
                    bind=info >> 4,
                    section=shndx,
                )
            )
        return out
