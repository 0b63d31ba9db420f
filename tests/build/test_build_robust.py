"""Damaged objects never crash extract(): it returns a config or raises an EbpmError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ebpm.build.metadata import extract
from ebpm.errors import EbpmError
from ebpm.loader.elf import ElfFile
from tests.build.conftest import BuiltTemplate


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_objects_fail_cleanly(
    built_templates: dict[str, BuiltTemplate], data: st.DataObject
) -> None:
    original = built_templates["hist"][1].object_path.read_bytes()
    elf = ElfFile(original)
    # aim at the parts extract() reads: the BTF, .maps/.rodata, symbols and section headers
    regions = [(s.offset, s.size) for s in elf.sections if s.size and s.name in
               (".BTF", ".rodata", ".symtab", ".strtab")]
    regions.append((len(original) - 15 * 64, 15 * 64))
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 8))):
        start, size = data.draw(st.sampled_from(regions))
        pos = data.draw(st.integers(start, min(start + size, len(blob)) - 1))
        blob[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        blob = blob[: data.draw(st.integers(0, len(blob)))]
    try:
        extract(bytes(blob))
    except EbpmError:
        pass
