"""Find the shell blocks of the project's markdown files (pure: no I/O but reading the file).

A block is a fenced block (```sh, ```bash, ```shell, ```console, or unlabelled) or an indented
block (four spaces after a blank line). It is a *shell block* when its first line is a prompt
(`$ cmd`, then the output the docs show) or starts with a command word (`ebpm`, `sudo`, ...): a
script whose every line must run. Anything else (TOML, Python, output samples) is prose.

The line right before a block (blank lines skipped) may be an HTML comment that changes how the
harness treats it:

    <!-- illustrative: REASON -->      not run (a synopsis, a placeholder, a remote registry ...)
    <!-- output-varies: REASON -->     run, exit status checked, the shown output not compared
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "Command", "blocks", "shell_blocks", "output_matches", "COMMAND_WORDS"]

# The first word of a line that makes an unprompted block a script.
COMMAND_WORDS = frozenset({
    "ebpm", "sudo", "make", "cd", "cp", "mkdir", "export", "echo", "cat", "ls", "rm", "skopeo",
    "cosign", "oras", "crane", "regctl", "curl", "openssl", "bpftool", "clang", "apt-get",
    "docker", "git", "tar", "sha256sum", "printf", "mount", "systemctl", "kubectl", "for",
    "jq", "python", "python3", "pip", "grep", "sed", "head", "tail", "wc", "diff", "cmp", "man",
    "source", "eval", "env", "chmod", "ln", "touch", "tee", "kill", "sleep", "test", "gzip",
    "wget", "ip", "tc", "getent", "systemd-run", "journalctl", "uvicorn", "xxd", "find",
})
SHELL_LANGS = frozenset({"sh", "bash", "shell", "console", "shell-session", "zsh"})
MARKER = re.compile(r"^\s*<!--\s*(illustrative|output-varies)\s*:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s{0,3})(`{3,}|~{3,})\s*([\w+-]*)")
ENV_ASSIGN = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


@dataclass(frozen=True)
class Command:
    """One command of a block: the text to run, its line, and the output shown (prompt form)."""

    text: str
    line: int
    expected: tuple[str, ...] | None = None  # None: a script line, no output shown


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first content line
    lines: tuple[str, ...]
    lang: str = ""  # fence info ("" for indented blocks)
    marker: str = ""  # "illustrative", "output-varies" or ""
    reason: str = ""
    commands: tuple[Command, ...] = field(default=())

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"

    @property
    def is_shell(self) -> bool:
        return bool(self.commands)


def _first_word(line: str) -> str:
    words = line.split()
    while words and ENV_ASSIGN.match(words[0]):
        words = words[1:]
    return words[0] if words else ""


def _commands(lines: tuple[str, ...], start: int, lang: str) -> tuple[Command, ...]:
    """The commands of a block, or () when it is not a shell block."""
    content = [(i, ln) for i, ln in enumerate(lines) if ln.strip()]
    if not content:
        return ()
    first = content[0][1]
    if lang and lang not in SHELL_LANGS:
        return ()
    if first.startswith("$ "):
        return _prompted(lines, start)
    if _first_word(first) in COMMAND_WORDS or (lang in SHELL_LANGS and lang != "console"):
        return _script(lines, start)
    return ()


def _joined(lines: tuple[str, ...], i: int) -> tuple[str, int]:
    """The command at lines[i] with its backslash continuations; the index after it."""
    parts = [lines[i]]
    while parts[-1].rstrip().endswith("\\") and i + 1 < len(lines):
        i += 1
        parts.append(lines[i])
    return "\n".join(parts), i + 1


def _prompted(lines: tuple[str, ...], start: int) -> tuple[Command, ...]:
    out: list[Command] = []
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            i += 1
            continue
        text, nxt = _joined(lines, i)
        expected: list[str] = []
        j = nxt
        while j < len(lines) and not lines[j].startswith("$ "):
            expected.append(lines[j])
            j += 1
        while expected and not expected[-1].strip():
            expected.pop()
        out.append(Command(text[2:], start + i, tuple(expected)))
        i = j
    return tuple(out)


def _script(lines: tuple[str, ...], start: int) -> tuple[Command, ...]:
    out: list[Command] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        text, nxt = _joined(lines, i)
        out.append(Command(text, start + i))
        i = nxt
    return tuple(out)


def _dedent(lines: list[str]) -> tuple[str, ...]:
    width = min((len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()), default=0)
    return tuple(ln[width:].rstrip() for ln in lines)


def blocks(path: Path) -> list[Block]:
    """Every code block of a markdown file, in order."""
    text = path.read_text().splitlines()
    found: list[Block] = []
    marker, reason = "", ""
    prev_blank = True
    i = 0
    while i < len(text):
        line = text[i]
        fence = FENCE.match(line)
        if fence:
            tick, lang = fence.group(2), fence.group(3).lower()
            j = i + 1
            while j < len(text) and not text[j].lstrip().startswith(tick):
                j += 1
            body = _dedent(text[i + 1:j])
            found.append(Block(path, i + 2, body, lang or "", marker, reason,
                               _commands(body, i + 2, lang)))
            marker, reason, prev_blank, i = "", "", False, j + 1
            continue
        if prev_blank and line.startswith("    ") and line.strip():
            j = i
            while j < len(text) and (text[j].startswith("    ") or not text[j].strip()):
                j += 1
            while j > i and not text[j - 1].strip():
                j -= 1
            body = _dedent(text[i:j])
            found.append(Block(path, i + 1, body, "", marker, reason, _commands(body, i + 1, "")))
            marker, reason, prev_blank, i = "", "", False, j
            continue
        m = MARKER.match(line)
        if m:
            marker, reason = m.group(1), m.group(2)
        elif line.strip():
            marker, reason = "", ""
        prev_blank = not line.strip() or bool(m)
        i += 1
    return found


def shell_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.is_shell or b.marker]


def _line_matches(pattern: str, actual: str) -> bool:
    """`...` in a shown line matches any text; trailing spaces are ignored."""
    pattern, actual = pattern.rstrip(), actual.rstrip()
    if "..." not in pattern and "…" not in pattern:
        return pattern == actual
    parts = re.split(r"\.\.\.|…", pattern)
    regex = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(regex, actual) is not None


def output_matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """The shown output against what ran: line by line, a line `...` stands for any lines."""
    exp = [e for e in expected]
    act = [a for a in actual]

    def match(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i].strip() in {"...", "…"}:
            return any(match(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and _line_matches(exp[i], act[j]) and match(i + 1, j + 1)

    return match(0, 0)
