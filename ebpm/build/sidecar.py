"""The BTF sidecar: BTF of event types that the object's own BTF lacks, built from the headers."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ebpm.build.toolchain import compile_bpf
from ebpm.errors import BuildError
from ebpm.loader.btf import Btf
from ebpm.loader.elf import ElfFile

__all__ = ["build_sidecar", "source_includes"]

_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"].*$', re.MULTILINE)


def source_includes(source_text: str) -> list[str]:
    """The `#include` lines of a source, in order, without included `.c` files."""
    return [m.group(0).strip() for m in _INCLUDE.finditer(source_text)
            if not m.group(1).endswith(".c")]


def _spelling(type_name: str, header_texts: Sequence[str]) -> str:
    """How C names the type: `struct event`, `union u`, `enum e`, or a typedef name."""
    for keyword in ("struct", "union", "enum"):
        pattern = re.compile(rf"\b{keyword}\s+{re.escape(type_name)}\s*\{{")
        if any(pattern.search(text) for text in header_texts):
            return f"{keyword} {type_name}"
    return type_name


def build_sidecar(
    type_names: Sequence[str],
    headers: Sequence[Path],
    *,
    clang: str,
    flags: Sequence[str],
    includes: Sequence[str] = (),
) -> bytes:
    """Raw BTF holding `type_names` (and what they use), compiled from the project's headers.

    One global of each type, compiled with `clang -g -target bpf`, makes clang emit the
    types' BTF; the result is the object's `.BTF` section, which libbpf reads with
    btf__parse_raw(). `includes` are the source's own `#include` lines, in its order (system
    headers such as <bpf/bpf_core_read.h> that the project's headers rely on come with them);
    `flags` must carry the include path of vmlinux.h and the package's cflags.
    """
    texts = [h.read_text(errors="replace") for h in headers]
    lines = list(includes)
    if not any("vmlinux.h" in line for line in lines):
        lines.insert(0, '#include "vmlinux.h"')
    named = " ".join(lines)
    lines += [f'#include "{h.name}"' for h in headers if f'"{h.name}"' not in named]
    for i, name in enumerate(type_names):
        lines.append(f"{_spelling(name, texts)} __ebpm_sidecar_{i} __attribute__((used));")
    with tempfile.TemporaryDirectory(prefix="ebpm-sidecar-") as tmp:
        src = Path(tmp) / "sidecar.c"
        src.write_text("\n".join(lines) + "\n")
        obj = Path(tmp) / "sidecar.o"
        include = sorted({str(h.parent) for h in headers})
        compile_bpf(
            clang, src, obj, cwd=Path(tmp),
            flags=[*flags, *(f"-I{d}" for d in include)],
        )
        elf = ElfFile(obj.read_bytes(), where="BTF sidecar", error=BuildError)
        section = elf.section(".BTF")
        if section is None:
            raise BuildError("BTF sidecar: clang emitted no .BTF section")
        data = elf.section_data(section)
    btf = Btf.parse(data, where="BTF sidecar", error=BuildError)
    missing = [n for n in type_names if not btf.has_type(n)]
    if missing:
        raise BuildError(f"BTF sidecar: type(s) {', '.join(missing)} not found in the headers")
    return data
