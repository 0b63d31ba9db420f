"""Doc comments of the `const volatile` globals in a C source: the help texts of package args."""

from __future__ import annotations

import re

__all__ = ["arg_docs"]

_DECL = re.compile(
    r"^[ \t]*(?:static\s+)?(?:const\s+volatile|volatile\s+const)\b[^;=()]*?"
    r"\b([A-Za-z_]\w*)\s*(?:\[[^\]]*\]\s*)*(?:=[^;]*)?;",
    re.MULTILINE,
)
_TRAILING = re.compile(r"[ \t]*(?:/\*(.*?)\*/|//([^\n]*))")


def _clean(text: str) -> str:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^/\*+|\*+/$", "", line).strip()
        line = re.sub(r"^(//+|\*+)", "", line).strip()
        if line:
            lines.append(line)
    return " ".join(lines)


def _comment_before(source: str, pos: int) -> str:
    before = source[:pos].rstrip()
    if before.endswith("*/"):
        start = before.rfind("/*")
        if start < 0:
            return ""
        # the comment must start its own line (not trail a previous statement)
        line_start = before.rfind("\n", 0, start) + 1
        if before[line_start:start].strip():
            return ""
        return _clean(before[start:])
    lines = before.split("\n")
    block: list[str] = []
    while lines and lines[-1].strip().startswith("//"):
        block.append(lines.pop())
    return _clean("\n".join(reversed(block)))


def arg_docs(source: str) -> dict[str, str]:
    """Map each `const volatile` global's name to its doc comment (above, or trailing)."""
    docs: dict[str, str] = {}
    for match in _DECL.finditer(source):
        name = match.group(1)
        text = _comment_before(source, match.start())
        if not text:
            trailing = _TRAILING.match(source, match.end())
            if trailing:
                text = _clean(trailing.group(1) or trailing.group(2) or "")
        docs[name] = text
    return docs
