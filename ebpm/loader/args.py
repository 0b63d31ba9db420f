"""Command-line flags for a package's `const volatile` globals, and the .rodata they produce."""

from __future__ import annotations

from ebpm.errors import UsageError
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ebpm.package import ArgSpec

__all__ = ["ParsedArgs", "parse_args", "help_text", "wants_help", "patch_rodata"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@record
class ParsedArgs:
    """Values given on the command line (by global name); absent globals keep their default."""

    values: dict[str, bool | int | float | str]


def wants_help(argv: Sequence[str]) -> bool:
    return any(a in ("-h", "--help") for a in argv)


def _spec_for(specs: Sequence[ArgSpec], flag: str) -> ArgSpec | None:
    for spec in specs:
        if spec.flag == flag or spec.name == flag or spec.name.replace("_", "-") == flag:
            return spec
    return None


def _convert(spec: ArgSpec, text: str) -> bool | int | float | str:
    where = f"--{spec.flag}"
    if spec.type == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise UsageError(f"{where}: expected true or false, got {text!r}")
    if spec.type in ("int", "uint"):
        try:
            number = int(text, 0)
        except ValueError:
            raise UsageError(f"{where}: expected an integer, got {text!r}") from None
        bits = spec.size * 8
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec.type == "int" else (
            0, (1 << bits) - 1)
        if spec.type == "uint" and -(1 << (bits - 1)) <= number < 0:
            number &= (1 << bits) - 1  # -1 for "all" in an unsigned global, as C would wrap it
        if not low <= number <= high:
            raise UsageError(f"{where}: {number} is out of range [{low}, {high}]")
        return number
    if spec.type == "float":
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"{where}: expected a number, got {text!r}") from None
    if len(text.encode()) >= spec.size:
        raise UsageError(f"{where}: at most {spec.size - 1} bytes, got {len(text.encode())}")
    return text


def parse_args(specs: Sequence[ArgSpec], argv: Sequence[str]) -> ParsedArgs:
    """Parse `--flag VALUE`, `--flag=VALUE` and bare `--flag` (bools) against the specs."""
    values: dict[str, bool | int | float | str] = {}
    i = 0
    argv = list(argv)
    while i < len(argv):
        token = argv[i]
        if not token.startswith("--") or token == "--":
            raise UsageError(
                f"package arguments: unexpected {token!r}",
                hint="write package flags as --flag VALUE; `-- -h` lists them",
            )
        flag, eq, inline = token[2:].partition("=")
        negated = False
        spec = _spec_for(specs, flag)
        if spec is None and flag.startswith("no-"):
            spec = _spec_for(specs, flag[3:])
            negated = spec is not None and spec.type == "bool"
            if not negated:
                spec = None
        if spec is None:
            known = ", ".join("--" + s.flag for s in specs) or "none"
            raise UsageError(f"package arguments: unknown flag --{flag}", hint=f"flags: {known}")
        if spec.type == "bool" and not eq:
            values[spec.name] = not negated
            i += 1
            continue
        if not eq:
            if i + 1 >= len(argv):
                raise UsageError(f"--{spec.flag}: needs a value")
            inline = argv[i + 1]
            i += 1
        values[spec.name] = _convert(spec, inline)
        i += 1
    return ParsedArgs(values)


def help_text(package: str, specs: Sequence[ArgSpec]) -> str:
    """The `ebpm run X -- -h` listing: one line per flag with type, default and help."""
    lines = [f"usage: ebpm run {package} -- [FLAGS]", ""]
    if not specs:
        lines.append("This package takes no flags.")
        return "\n".join(lines)
    lines.append("flags (from the program's `const volatile` globals):")
    rows = []
    for s in specs:
        meta = "" if s.type == "bool" else f" {s.type.upper() if s.type != 'str' else 'TEXT'}"
        default = s.default
        shown = "" if default in (0, False, "", 0.0) else f" (default: {default})"
        rows.append((f"  --{s.flag}{meta}", (s.help or s.name) + shown))
    width = max(len(left) for left, _ in rows) + 2
    lines.extend(f"{left:<{width}}{right}" for left, right in rows)
    return "\n".join(lines)


def _encode(spec: ArgSpec, value: bool | int | float | str) -> bytes:
    if spec.type == "bool":
        return (1 if value else 0).to_bytes(spec.size, "little")
    if spec.type in ("int", "uint"):
        return int(value).to_bytes(spec.size, "little", signed=spec.type == "int")
    if spec.type == "float":
        import struct  # (ctypes brings it before a load; `run --agent`'s -h check needs none)

        return struct.pack("<d" if spec.size == 8 else "<f", float(value))
    return str(value).encode().ljust(spec.size, b"\0")[: spec.size]


def patch_rodata(
    rodata: bytes, specs: Sequence[ArgSpec], parsed: ParsedArgs,
    offsets: dict[str, int] | None = None,
) -> bytes:
    """The .rodata image with the given values written at their globals' offsets."""
    out = bytearray(rodata)
    for spec in specs:
        if spec.name not in parsed.values:
            continue
        offset = spec.offset if spec.offset >= 0 else (offsets or {}).get(spec.name, -1)
        if offset < 0 or offset + spec.size > len(out):
            raise UsageError(
                f"--{spec.flag}: the object has no .rodata slot for {spec.name}",
                hint="rebuild the package with `ebpm build`",
            )
        out[offset : offset + spec.size] = _encode(spec, parsed.values[spec.name])
    return bytes(out)
