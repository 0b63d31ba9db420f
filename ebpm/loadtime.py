"""What a run of a built directory needs of its package's config, as plain text: the name, the
programs, the flags (their .rodata layout and defaults), the maps, the event streams, the
requirements and the display hints, read with str methods only, so that `ebpm run DIR` starts
libbpf's load and reaches its first event without importing `json` (which brings `re` and
`enum`; docs/architecture.md, the run's tenth round).

`ebpm build` writes it as `.ebpm/loadtime.txt` beside `.ebpm/config.json`, derived from the same
config in the same step, and records which config.json that is: its size and CRC-32 (`zlib`'s,
as a .pyc records its source: a check against edits by hand, not a signature; whoever can write
the directory can write its object too). A run reads both files, takes the text form when the
record matches config.json's bytes and refuses the directory otherwise (edited since the build:
`ebpm build` again); it parses config.json only for what the form leaves out (the description,
the flags' help, the metrics: `-h`, `--metrics`). Nothing else carries the form (the config blob
on the wire is unchanged). docs/format.md, "The load-time text form", has the grammar; version 2:

    ebpm-loadtime 2
    config SIZE CRC32                                   (config.json's bytes; CRC32: 8 hex digits)
    name NAME
    program NAME SECTION TYPE ATTACH GROUP AUTOLOAD     (at least one, in the config's order)
    arg GLOBAL FLAG TYPE SIZE OFFSET DEFAULT            (one a flag, in the config's order)
    map NAME TYPE KEY_SIZE VALUE_SIZE MAX_ENTRIES KEY_TYPE VALUE_TYPE
    event MAP TYPE
    require KERNEL BTF ARCH                             (exactly one)
    unit UNIT                                           (at most one)
    result MAP
    field NAME HINT
    end

The kinds of line in that order, each kind's lines in the config's order; ASCII, one space
between fields, each line ended by a newline, nothing after `end`; `-` for an empty string
field; AUTOLOAD and BTF 1 or 0; ARCH comma-separated. A config the form cannot carry (no
programs; a field with a space, or one that is itself `-`) gets none: the run reads config.json.
A first line of another version is not an error either (`read` returns None).
"""

from __future__ import annotations

from ebpm.errors import ManifestError
from ebpm.package import (
    FIELD_HINTS,
    ArgSpec,
    EventSpec,
    MapSpec,
    ProgramSpec,
    Requirements,
    is_name,
)
from ebpm.record import field, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.package import PackageConfig

__all__ = ["FILE", "VERSION", "LoadTime", "from_config", "render", "parse", "read", "describes"]

FILE = "loadtime.txt"  # in the built directory's .ebpm/, beside config.json
VERSION = 2
_MAGIC = "ebpm-loadtime"
MAX_BYTES = 64 << 10  # a larger text form is not written (the run reads config.json)
MAX_CONFIG = 16 << 20  # bytes of config.json a run reads to check the record against
_MAX_TOKEN = 512
_MAX_SIZE = 1 << 16  # bytes of one flag's global
_MAX_OFFSET = (1 << 31) - 1
_MAX_U32 = (1 << 32) - 1
_ARG_TYPES = ("bool", "int", "uint", "str", "float")
_NONE = "-"  # an empty string field
_HINT = "run `ebpm build` on the package again"
# the kinds of line after the header, in their order; the singletons at most once
_ORDER = ("program", "arg", "map", "event", "require", "unit", "result", "field")
_SINGLE = ("require", "unit")


@record
class LoadTime:
    """What a run needs of a package's config (see the module's docstring), and which
    config.json it was derived from (`source`: its size and CRC-32; (0, 0) for one made from
    a config in memory). The run passes it where a `PackageConfig` goes: the same fields."""

    name: str
    programs: tuple[ProgramSpec, ...]
    args: tuple[ArgSpec, ...]
    maps: tuple[MapSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    display: dict[str, Any] = field(default_factory=dict)
    source: tuple[int, int] = (0, 0)


def _crc(data: bytes) -> int:
    import zlib  # (~0.3 ms; json's import is ~8)

    return zlib.crc32(data)


def from_config(config: PackageConfig | LoadTime, config_json: bytes | None = None) -> LoadTime:
    """The run's part of `config`; `config_json`: the bytes it was read from (or will be
    written as), recorded as its source."""
    source = (len(config_json), _crc(config_json)) if config_json is not None else (0, 0)
    return LoadTime(config.name, tuple(config.programs), tuple(
        ArgSpec(a.name, a.flag, a.type, a.size, a.default, offset=a.offset) for a in config.args),
        tuple(config.maps), tuple(config.events), config.requirements, dict(config.display),
        source)


def describes(part: LoadTime, config_json: bytes) -> bool:
    """Whether `part` was derived from these bytes of config.json (its size and CRC-32)."""
    return part.source == (len(config_json), _crc(config_json))


def _field(text: str) -> str:
    return text or _NONE


def _default(arg: ArgSpec) -> str:
    value = arg.default
    if arg.type == "bool":
        return "1" if value else "0"
    if arg.type == "str":
        return _field(str(value))
    return repr(value)


def render(config: PackageConfig, config_json: bytes) -> str | None:
    """The text form of `config`'s run part, recording `config_json` (the bytes written as
    config.json) as its source; None when it has none to write (no programs: the run takes
    them from the object) or a value the form cannot carry: the run then reads config.json."""
    part = from_config(config, config_json)
    if not part.programs:
        return None
    req, display = part.requirements, part.display
    lines = [f"{_MAGIC} {VERSION}", f"config {part.source[0]} {part.source[1]:08x}",
             f"name {part.name}"]
    lines += [f"program {p.name} {p.section} {p.type} {_field(p.attach)} {_field(p.group)} "
              f"{int(p.autoload)}" for p in part.programs]
    lines += [f"arg {a.name} {a.flag} {a.type} {a.size} {a.offset} {_default(a)}"
              for a in part.args]
    lines += [f"map {m.name} {m.type} {m.key_size} {m.value_size} {m.max_entries} "
              f"{_field(m.key_type)} {_field(m.value_type)}" for m in part.maps]
    lines += [f"event {e.map} {e.type}" for e in part.events]
    lines.append(f"require {_field(req.kernel)} {int(req.btf)} {_field(','.join(req.arch))}")
    if display.get("unit"):
        lines.append(f"unit {display['unit']}")
    lines += [f"result {name}" for name in display.get("results", ())]
    lines += [f"field {name} {hint}" for name, hint in display.get("fields", {}).items()]
    text = "\n".join([*lines, "end", ""])
    try:  # (a value with a space, a `-` that would read back as empty, a type mismatch...)
        back = parse(text)
    except ManifestError:
        return None
    if back != part or [type(a.default) for a in back.args] != [
            type(a.default) for a in part.args]:
        return None
    return text


def _token(text: str, what: str) -> str:
    if not 0 < len(text) <= _MAX_TOKEN or not text.isascii() or not text.isprintable() or (
            " " in text):
        raise ManifestError(f"{what}: not a field")
    return text


def _optional(text: str, what: str) -> str:
    return "" if _token(text, what) == _NONE else text


def _identifier(text: str, what: str) -> str:
    """A C identifier (a program's or a global's name)."""
    _token(text, what)
    if not text.replace("_", "a").isalnum() or text[0].isdigit():
        raise ManifestError(f"{what}: {text!r} is not a C identifier")
    return text


def _package_name(text: str) -> str:
    _token(text, "name")
    if not is_name(text):
        raise ManifestError(f"name: {text!r} is not a valid package name")
    return text


def _number(text: str, what: str, low: int, high: int, digits_max: int = 10) -> int:
    digits = text[1:] if text.startswith("-") else text
    if not 0 < len(digits) <= digits_max or not digits.isascii() or not digits.isdigit() or (
            digits[0] == "0" and (len(digits) > 1 or text != digits)):
        raise ManifestError(f"{what}: {text!r} is not a decimal number")
    value = int(text)
    if not low <= value <= high:
        raise ManifestError(f"{what}: {value} is out of range [{low}, {high}]")
    return value


def _flag(text: str, kind: str, what: str) -> bool:
    if text not in ("0", "1"):
        raise ManifestError(f"{what}: {kind} is 0 or 1")
    return text == "1"


def _parse_default(text: str, kind: str, what: str) -> bool | int | float | str:
    if kind == "bool":
        return _flag(text, "DEFAULT", what)
    if kind in ("int", "uint"):
        return _number(text, what, -(1 << 63) if kind == "int" else 0, (1 << 64) - 1, 20)
    if kind == "float":
        try:
            value = float(_token(text, what))
        except ValueError:
            raise ManifestError(f"{what}: {text!r} is not a number") from None
        if value - value != 0.0:  # (inf and nan: JSON has neither)
            raise ManifestError(f"{what}: {text!r} is not a finite number")
        return value
    return _optional(text, what)


def _line(kind: str, fields: list[str], at: str) -> Any:
    """One line after the header, as its record (or its value, for unit, result, field)."""
    count = {"program": 7, "arg": 7, "map": 8, "event": 3, "require": 4, "unit": 2,
             "result": 2, "field": 3}[kind]
    if len(fields) != count:
        raise ManifestError(f"{at}: a {kind} line has {count - 1} field"
                            f"{'s' if count > 2 else ''}")
    if kind == "program":
        return ProgramSpec(_identifier(fields[1], at), _token(fields[2], at),
                           _token(fields[3], at), _optional(fields[4], at),
                           _optional(fields[5], at), _flag(fields[6], "AUTOLOAD", at))
    if kind == "arg":
        if fields[3] not in _ARG_TYPES:
            raise ManifestError(f"{at}: TYPE is one of {', '.join(_ARG_TYPES)}")
        return ArgSpec(_identifier(fields[1], at), _token(fields[2], at), fields[3],
                       _number(fields[4], at, 1, _MAX_SIZE),
                       _parse_default(fields[6], fields[3], at),
                       offset=_number(fields[5], at, -1, _MAX_OFFSET))
    if kind == "map":
        key_size, value_size, max_entries = (_number(f, at, 0, _MAX_U32) for f in fields[3:6])
        return MapSpec(_token(fields[1], at), _token(fields[2], at), key_size, value_size,
                       max_entries, _optional(fields[6], at), _optional(fields[7], at))
    if kind == "event":
        return EventSpec(_token(fields[1], at), _token(fields[2], at))
    if kind == "require":
        arch = _optional(fields[3], at)
        return Requirements(_optional(fields[1], at), _flag(fields[2], "BTF", at),
                            tuple(_token(a, at) for a in arch.split(",")) if arch else ())
    if kind == "field":
        if fields[2] not in FIELD_HINTS:
            raise ManifestError(f"{at}: HINT is one of {', '.join(FIELD_HINTS)}")
        return _token(fields[1], at), fields[2]
    return _token(fields[1], at)  # unit, result


def parse(text: str | bytes, *, where: str = FILE, hint: str = _HINT) -> LoadTime:
    """The text form of this version, checked field by field; anything else (truncated, a
    field too many or too few, a non-ASCII byte, a number out of range, a line out of order)
    is refused with ManifestError."""
    try:
        if isinstance(text, bytes):
            if len(text) > MAX_BYTES:
                raise ManifestError(f"larger than {MAX_BYTES} bytes")
            text = text.decode("ascii")
        if len(text) > MAX_BYTES:
            raise ManifestError(f"larger than {MAX_BYTES} bytes")
        if not text.endswith("\nend\n"):
            raise ManifestError("truncated (no `end` line)")
        lines = text[:-len("end\n")].split("\n")[:-1]
        if len(lines) < 3 or lines[0] != f"{_MAGIC} {VERSION}":
            raise ManifestError(f"the first line is not `{_MAGIC} {VERSION}`")
        source = lines[1].split(" ")
        if len(source) != 3 or source[0] != "config" or len(source[2]) != 8 or any(
                c not in "0123456789abcdef" for c in source[2]):
            raise ManifestError("line 2: expected `config SIZE CRC32` (CRC32: 8 hex digits)")
        size = _number(source[1], "line 2", 0, MAX_CONFIG)
        head = lines[2].split(" ")
        if len(head) != 2 or head[0] != "name":
            raise ManifestError("line 3: expected `name NAME`")
        name = _package_name(head[1])
        found: dict[str, list[Any]] = {kind: [] for kind in _ORDER}
        rank = 0
        for number, line in enumerate(lines[3:], start=4):
            fields = line.split(" ")
            at = f"line {number}"
            kind = fields[0]
            if kind not in found or _ORDER.index(kind) < rank or (
                    kind in _SINGLE and found[kind]):
                raise ManifestError(f"{at}: expected one of {', '.join(_ORDER[rank:])} or "
                                    "`end`, in that order")
            rank = _ORDER.index(kind)
            found[kind].append(_line(kind, fields, at))
        if not found["program"]:
            raise ManifestError("no program line")
        if not found["require"]:
            raise ManifestError("no require line")
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not ASCII text", hint=hint) from None
    except ManifestError as err:
        raise ManifestError(f"{where}: {err.message}", hint=hint) from None
    display: dict[str, Any] = {}
    if found["unit"]:
        display["unit"] = found["unit"][0]
    if found["result"]:
        display["results"] = found["result"]
    if found["field"]:
        display["fields"] = dict(found["field"])
    return LoadTime(name, tuple(found["program"]), tuple(found["arg"]), tuple(found["map"]),
                    tuple(found["event"]), found["require"][0], display,
                    (size, int(source[2], 16)))


def read(path: str, *, hint: str = _HINT) -> LoadTime | None:
    """The text form at `path`, parsed; None when there is none to read (missing, unreadable,
    or of another version: the caller reads config.json instead). Refused (ManifestError)
    when it is of this version but not well formed."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError:
        return None
    first = data[:data.find(b"\n")] if b"\n" in data else b""
    magic, _, version = first.partition(b" ")
    if magic == _MAGIC.encode() and version.isdigit() and version != str(VERSION).encode():
        return None  # another version of the form: config.json says it all
    return parse(data, where=path, hint=hint)
