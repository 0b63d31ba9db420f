"""The load-time part of a package's config as plain text: what libbpf's load needs before it
starts (the package's name, its programs, its flags' .rodata layout), read with str methods
only, so that `ebpm run DIR` starts the load before `json` (with `re` and `enum`) is imported.

`ebpm build` writes it as `.ebpm/loadtime.txt` beside `.ebpm/config.json`, derived from the same
config in the same step (docs/format.md, "The load-time text form"); nothing else carries it
(the config blob on the wire is unchanged). A run reads it first, starts the load, then reads
config.json while libbpf loads and stops, before attaching anything, if the two disagree
(`check`). Version 1:

    ebpm-loadtime 1
    name NAME
    program NAME SECTION TYPE ATTACH GROUP AUTOLOAD     (one a program, in the config's order)
    arg GLOBAL FLAG TYPE SIZE OFFSET                    (one a flag, in the config's order)
    end

ASCII, one space between fields, each line ended by a newline, nothing after `end`; `-` for an
empty ATTACH or GROUP; AUTOLOAD 1 or 0; SIZE and OFFSET decimal (OFFSET -1: unknown, found in
the object's BTF). A flag's default and help are not here (the run does not need them before
the load; `-h` reads config.json). A first line of another version is not an error: the reader
takes config.json instead (`read` returns None), so that the form can change.
"""

from __future__ import annotations

from ebpm.errors import ManifestError
from ebpm.package import ArgSpec, ProgramSpec, is_name
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.package import PackageConfig

__all__ = ["FILE", "VERSION", "LoadTime", "from_config", "render", "parse", "read", "check"]

FILE = "loadtime.txt"  # in the built directory's .ebpm/, beside config.json
VERSION = 1
_MAGIC = "ebpm-loadtime"
MAX_BYTES = 64 << 10  # a larger text form is not written (the run reads config.json)
_MAX_TOKEN = 512
_MAX_SIZE = 1 << 16  # bytes of one flag's global
_MAX_OFFSET = (1 << 31) - 1
_ARG_TYPES = ("bool", "int", "uint", "str", "float")
_NONE = "-"  # an empty ATTACH or GROUP
_HINT = "run `ebpm build` on the package again"


@record
class LoadTime:
    """The load-time part of a config: the name, the programs, the flags' layout (each
    `ArgSpec` with default 0 and no help: those are config.json's)."""

    name: str
    programs: tuple[ProgramSpec, ...]
    args: tuple[ArgSpec, ...]


def from_config(config: PackageConfig | LoadTime) -> LoadTime:
    """The load-time part of `config`."""
    return LoadTime(config.name, tuple(config.programs), tuple(
        ArgSpec(a.name, a.flag, a.type, a.size, offset=a.offset) for a in config.args))


def render(config: PackageConfig) -> str | None:
    """The text form of `config`'s load-time part; None when it has none to write (no
    programs: the run takes them from the object) or a value the form cannot carry (a field
    with a space or a non-ASCII character, an empty ATTACH or GROUP written `-`...): the run
    then reads config.json, as before."""
    part = from_config(config)
    if not part.programs:
        return None
    lines = [f"{_MAGIC} {VERSION}", f"name {part.name}"]
    lines += [f"program {p.name} {p.section} {p.type} {p.attach or _NONE} {p.group or _NONE} "
              f"{int(p.autoload)}" for p in part.programs]
    lines += [f"arg {a.name} {a.flag} {a.type} {a.size} {a.offset}" for a in part.args]
    text = "\n".join([*lines, "end", ""])
    try:
        if parse(text) != part:  # (a `-` in ATTACH or GROUP would read back as empty)
            return None
    except ManifestError:
        return None
    return text


def _token(text: str, what: str) -> str:
    if not 0 < len(text) <= _MAX_TOKEN or not text.isascii() or not text.isprintable() or (
            " " in text):
        raise ManifestError(f"{what}: not a field")
    return text


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


def _number(text: str, what: str, low: int, high: int) -> int:
    digits = text[1:] if text.startswith("-") else text
    if not 0 < len(digits) <= 10 or not digits.isascii() or not digits.isdigit() or (
            digits[0] == "0" and (len(digits) > 1 or text != digits)):
        raise ManifestError(f"{what}: {text!r} is not a decimal number")
    value = int(text)
    if not low <= value <= high:
        raise ManifestError(f"{what}: {value} is out of range [{low}, {high}]")
    return value


def _optional(text: str) -> str:
    return "" if text == _NONE else text


def parse(text: str | bytes, *, where: str = FILE, hint: str = _HINT) -> LoadTime:
    """The text form of version 1, checked field by field; anything else (truncated, a field
    too many or too few, a non-ASCII byte, a number out of range, a line out of order) is
    refused with ManifestError."""
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
        if len(lines) < 2 or lines[0] != f"{_MAGIC} {VERSION}":
            raise ManifestError(f"the first line is not `{_MAGIC} {VERSION}`")
        head = lines[1].split(" ")
        if len(head) != 2 or head[0] != "name":
            raise ManifestError("line 2: expected `name NAME`")
        name = _package_name(head[1])
        programs: list[ProgramSpec] = []
        args: list[ArgSpec] = []
        for number, line in enumerate(lines[2:], start=3):
            fields = line.split(" ")
            at = f"line {number}"
            if fields[0] == "program" and not args:
                if len(fields) != 7:
                    raise ManifestError(f"{at}: a program line has 6 fields")
                if fields[6] not in ("0", "1"):
                    raise ManifestError(f"{at}: AUTOLOAD is 0 or 1")
                programs.append(ProgramSpec(
                    _identifier(fields[1], at), _token(fields[2], at), _token(fields[3], at),
                    _optional(_token(fields[4], at)), _optional(_token(fields[5], at)),
                    fields[6] == "1"))
            elif fields[0] == "arg" and programs:
                if len(fields) != 6:
                    raise ManifestError(f"{at}: an arg line has 5 fields")
                if fields[3] not in _ARG_TYPES:
                    raise ManifestError(f"{at}: TYPE is one of {', '.join(_ARG_TYPES)}")
                args.append(ArgSpec(
                    _identifier(fields[1], at), _token(fields[2], at), fields[3],
                    _number(fields[4], at, 1, _MAX_SIZE),
                    offset=_number(fields[5], at, -1, _MAX_OFFSET)))
            else:
                raise ManifestError(f"{at}: expected a program line, an arg line or `end`")
        if not programs:
            raise ManifestError("no program line")
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not ASCII text", hint=hint) from None
    except ManifestError as err:
        raise ManifestError(f"{where}: {err.message}", hint=hint) from None
    return LoadTime(name, tuple(programs), tuple(args))


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


def check(part: LoadTime, config: PackageConfig, *, where: str, hint: str = _HINT) -> None:
    """`config` (config.json, read while libbpf loads) agrees with the load-time part the load
    started from; otherwise the directory was edited by hand since `ebpm build`."""
    if from_config(config) != part:
        raise ManifestError(f"{where}: {FILE} and config.json disagree (edited since "
                            "`ebpm build`?); nothing was attached", hint=hint)
