"""The package model: `ebpm.toml` (what an author writes) and the config blob (what is published).

`ProjectManifest` is parsed from ebpm.toml. `PackageConfig` is the metadata that `ebpm build`
extracts and that travels as the artifact's config blob
(`application/vnd.ebpm.package.config.v1+json`); it parses identically on every machine, and
only the loader makes kernel-dependent choices.
"""

from __future__ import annotations

from ebpm.errors import ManifestError
from ebpm.record import asdict, field, fields, record

# (json, re and ebpm.versions are imported where a config is parsed or checked: `ebpm run DIR`
# starts libbpf's load from the records below, read from the load-time text form
# (`ebpm.loadtime`), before any of them; docs/architecture.md, the run's eighth round)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "LOCK_FILE",
    "BUILD_DIR",
    "CONFIG_FILE",
    "ProgramSpec",
    "MapSpec",
    "EventSpec",
    "ArgSpec",
    "MetricSpec",
    "metric_specs",
    "Requirements",
    "PackageConfig",
    "ProjectManifest",
    "is_name",
    "validate_name",
    "validate_version",
    "expect",
    "flag_option",
]

FORMAT_VERSION = 1
MANIFEST_FILE = "ebpm.toml"
LOCK_FILE = "ebpm.lock"  # beside it: what `ebpm install` resolved (ebpm.resolver.lockfile)
BUILD_DIR = ".ebpm"  # `ebpm build` writes config.json and the layer files here
CONFIG_FILE = "config.json"

FIELD_HINTS = ("strings", "ip", "hex", "str", "show")  # see ebpm.loader.display


def is_name(name: object) -> bool:
    """A package name: lowercase ASCII letters and digits, with single '.', '_' or '-' between
    them (`[a-z0-9]+([._-][a-z0-9]+)*`, by str methods: a run checks it on the way to its
    first event, where the pattern's compile cost ~0.2 ms)."""
    return isinstance(name, str) and name.isascii() and all(
        part.isalnum() and part.islower() or part.isdigit()
        for part in name.replace("_", ".").replace("-", ".").split("."))


def validate_name(name: str, *, where: str = "package name") -> str:
    if not is_name(name):
        raise ManifestError(
            f"{where}: {name!r} is not a valid package name",
            hint="use lowercase letters, digits and single '.', '_' or '-' separators",
        )
    return name


def validate_version(version: str, *, where: str = "version") -> str:
    from ebpm.versions import is_version

    if not is_version(version):
        raise ManifestError(
            f"{where}: {version!r} is not a semantic version", hint="write it as MAJOR.MINOR.PATCH"
        )
    return version


def expect(value: Any, kind: str, what: str) -> Any:
    """`value` when it is of `kind` ("string", "list of strings" or "table"), else a
    ManifestError "WHAT must be a KIND, not TYPE VALUE" (`what` names the file and the key)."""
    ok = {
        "string": isinstance(value, str),
        "list of strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "table": isinstance(value, dict),
    }[kind]
    if not ok:
        raise ManifestError(f"{what} must be a {kind}, not {type(value).__name__} {value!r}",
                            hint="see the ebpm.toml reference in docs/authoring.md")
    return value


def flag_option(flag: str, *, where: str) -> str:
    """An ebpm.toml `flag`: a long option name (`pid`, or `--pid`), returned without `--`:
    ASCII letters, digits and '-', not starting with '-', at least 2 characters."""
    name = flag.removeprefix("--")
    if len(name) < 2 or name.startswith("-") or not name.isascii() or not all(
            c.isalnum() or c == "-" for c in name):
        raise ManifestError(
            f"{where}: {flag!r} is not a long option name",
            hint="use at least 2 letters, digits or '-', not starting with '-', "
                 "e.g. flag = \"min-us\"")
    return name


@record
class ProgramSpec:
    """One BPF program of the object.

    `group`: programs sharing a non-empty group are alternatives for one hook, in order of
    preference (for example tp_btf first, raw_tp second); the loader keeps the first that loads
    and attaches, and reports the ones it dropped. `autoload=False` programs load only as a
    fallback of their group or when a user asks for them.
    """

    name: str
    section: str
    type: str
    attach: str = ""
    group: str = ""
    autoload: bool = True


@record
class MapSpec:
    """One BPF map; key/value type names refer to BTF types, for decoding."""

    name: str
    type: str
    key_size: int = 0
    value_size: int = 0
    max_entries: int = 0
    key_type: str = ""
    value_type: str = ""


@record
class EventSpec:
    """Records of C type `type` arrive through the ring/perf buffer map `map`."""

    map: str
    type: str


@record
class ArgSpec:
    """A `const volatile` global in .rodata, exposed as the command-line flag `--flag`."""

    name: str
    flag: str
    type: str  # "bool", "int", "uint", "str" (char array), "float"
    size: int
    default: bool | int | float | str = 0
    help: str = ""
    offset: int = -1  # byte offset inside .rodata, -1 when unknown


_METRIC_TYPES = ("counter", "gauge", "histogram")
_METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


@record
class MetricSpec:
    """How one map becomes a Prometheus metric (`[metrics.MAP]` in ebpm.toml): `name` (default
    ebpm_PACKAGE_MAP), `type` (counter, gauge or histogram; default by the map's shape), `help`,
    `labels` (the key/value fields kept as labels, the rest summed over; None: all) and `value`
    (the one value field to export; default: every numeric field)."""

    map: str
    name: str = ""
    type: str = ""
    help: str = ""
    labels: tuple[str, ...] | None = None
    value: str = ""


def metric_specs(table: Any, *, where: str = "[metrics]") -> tuple[MetricSpec, ...]:
    """`{MAP: {name, type, help, labels, value}}` (ebpm.toml's [metrics] tables), checked."""
    import re

    if not isinstance(table, dict):
        raise ManifestError(f"{where}: expected tables [metrics.MAP]")
    specs = []
    for map_name, spec in table.items():
        at = f"{where}.{map_name}"
        if not isinstance(spec, dict):
            raise ManifestError(f"{at}: expected a table")
        unknown = sorted(set(spec) - {"name", "type", "help", "labels", "value"})
        if unknown:
            raise ManifestError(f"{at}: unknown key(s) {', '.join(unknown)}",
                                hint="keys: name, type, help, labels, value")
        kind = spec.get("type", "")
        if kind and kind not in _METRIC_TYPES:
            raise ManifestError(f"{at}: type {kind!r} is not one of {', '.join(_METRIC_TYPES)}")
        name = spec.get("name", "")
        if name and (not isinstance(name, str) or not re.fullmatch(_METRIC_NAME, name)):
            raise ManifestError(f"{at}: {name!r} is not a Prometheus metric name",
                                hint="use letters, digits, '_' and ':', not starting with a digit")
        labels = spec.get("labels")
        if labels is not None and (not isinstance(labels, (list, tuple)) or not all(
                isinstance(x, str) for x in labels)):
            raise ManifestError(f"{at}: labels must be a list of field names")
        specs.append(MetricSpec(str(map_name), name, kind, str(spec.get("help", "")),
                                tuple(labels) if labels is not None else None,
                                str(spec.get("value", ""))))
    return tuple(specs)


@record
class Requirements:
    kernel: str = ""  # minimum kernel release, e.g. "5.8"
    btf: bool = True
    arch: tuple[str, ...] = ()


def _display(data: Any, where: str) -> dict[str, Any]:
    """Check ebpm.toml's `[display]` table (or the config's `display`): {unit, results,
    fields}; returns it normalized (empty keys dropped)."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: [display] must be a table")
    unknown = sorted(set(data) - {"unit", "results", "fields"})
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) in [display]: {', '.join(unknown)}",
                            hint="known: unit, results, fields")
    out: dict[str, Any] = {}
    unit = data.get("unit", "")
    if not isinstance(unit, str):
        raise ManifestError(f"{where}: [display] unit must be a string such as \"usecs\"")
    if unit:
        out["unit"] = unit
    results = data.get("results", [])
    if not isinstance(results, list) or not all(isinstance(r, str) for r in results):
        raise ManifestError(f"{where}: [display] results must be a list of map names")
    if results:
        out["results"] = list(results)
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise ManifestError(f"{where}: [display.fields] must be a table of FIELD = HINT")
    for name, hint in fields.items():
        if hint not in FIELD_HINTS:
            raise ManifestError(
                f"{where}: [display.fields] {name} = {hint!r} is not a hint",
                hint="hints: " + ", ".join(FIELD_HINTS))
    if fields:
        out["fields"] = dict(sorted(fields.items()))
    return out



def _from(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values = dict(data)
    if "arch" in values and isinstance(values["arch"], list):
        values["arch"] = tuple(values["arch"])
    try:
        return cls(**values)
    except TypeError as err:
        raise ManifestError(f"{where}: {err}") from err


@record
class PackageConfig:
    """The published metadata of a package: the artifact's config blob."""

    name: str
    version: str
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    dependencies: dict[str, Any] = field(default_factory=dict)
    programs: tuple[ProgramSpec, ...] = ()
    maps: tuple[MapSpec, ...] = ()
    events: tuple[EventSpec, ...] = ()
    args: tuple[ArgSpec, ...] = ()
    requirements: Requirements = field(default_factory=Requirements)
    format_version: int = FORMAT_VERSION
    builder: str = ""
    metrics: tuple[MetricSpec, ...] = ()  # left out of the JSON when empty (digests unchanged)
    # how results read: {"unit": "usecs", "results": [map...], "fields": {field: hint}}
    # (ebpm.toml [display]; see ebpm.loader.display); left out of the JSON when empty
    display: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.metrics:
            del data["metrics"]
        if not self.display:
            del data["display"]
        return data

    def to_json(self) -> bytes:
        """Canonical bytes: sorted keys, compact separators, UTF-8."""
        from ebpm.canonical import canonical_json  # (not on `ebpm run`'s way to the load)

        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> PackageConfig:
        if not isinstance(data, dict):
            raise ManifestError("package config: expected a JSON object")
        fmt = data.get("format_version", FORMAT_VERSION)
        if fmt != FORMAT_VERSION:
            raise ManifestError(
                f"package config: format version {fmt} is not supported (this ebpm reads "
                f"{FORMAT_VERSION})",
                hint="upgrade ebpm",
            )
        values = dict(data)
        try:
            values["name"] = validate_name(values.get("name", ""))
            values["version"] = validate_version(values.get("version", ""))
            values["authors"] = tuple(values.get("authors", ()))
            values["programs"] = tuple(
                _from(ProgramSpec, p, "program") for p in values.get("programs", ())
            )
            values["maps"] = tuple(_from(MapSpec, m, "map") for m in values.get("maps", ()))
            values["events"] = tuple(_from(EventSpec, e, "event") for e in values.get("events", ()))
            values["args"] = tuple(_from(ArgSpec, a, "arg") for a in values.get("args", ()))
            values["requirements"] = _from(
                Requirements, values.get("requirements", {}), "requirements"
            )
            metrics = values.get("metrics", ())
            if not isinstance(metrics, (list, tuple)):
                raise ManifestError("package config: metrics must be a list")
            values["metrics"] = metric_specs(
                {m.get("map", ""): {k: v for k, v in m.items() if k != "map"}
                 for m in metrics if isinstance(m, dict)}, where="package config: metrics")
            values["display"] = _display(values.get("display", {}), "package config")
        except AttributeError as err:
            raise ManifestError(f"package config: {err}") from err
        return _from(cls, values, "package config")  # type: ignore[no-any-return]

    @classmethod
    def from_json(cls, data: bytes) -> PackageConfig:
        import json

        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise ManifestError(f"package config: not valid JSON: {err}") from err

    def program(self, name: str) -> ProgramSpec | None:
        return next((p for p in self.programs if p.name == name), None)

    def map(self, name: str) -> MapSpec | None:
        return next((m for m in self.maps if m.name == name), None)


@record
class ProjectManifest:
    """ebpm.toml: what the author declares. Paths are relative to `root`."""

    root: Path
    name: str
    version: str
    description: str = ""
    authors: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    readme: str = ""
    dependencies: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)
    events: dict[str, str] = field(default_factory=dict)  # map name -> C struct name
    args: dict[str, dict[str, Any]] = field(default_factory=dict)  # global -> {flag, help}
    metrics: tuple[MetricSpec, ...] = ()  # [metrics.MAP]: how maps become Prometheus metrics
    display: dict[str, Any] = field(default_factory=dict)  # [display]: unit, results, fields

    @property
    def build_dir(self) -> Path:
        return self.root / BUILD_DIR

    @property
    def file(self) -> Path:
        """ebpm.toml itself: what mistakes in it are reported against."""
        return self.root / MANIFEST_FILE

    def readme_file(self) -> Path | None:
        """The README to publish: the file `package.readme` names (a ManifestError when there
        is none), else README.md when the package has one."""
        path = self.root / (self.readme or "README.md")
        if self.readme and not path.is_file():
            raise ManifestError(
                f"{self.file}: package.readme {self.readme!r}: no such file in {self.root}",
                hint="create it, or fix or remove `readme` in [package]",
            )
        return path if path.is_file() else None

    @classmethod
    def load(cls, directory: str | Path) -> ProjectManifest:
        from pathlib import Path  # (only where ebpm.toml is read: not on `ebpm run`'s path)

        root = Path(directory)
        path = root / MANIFEST_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError as err:
            raise ManifestError(
                f"{path}: no {MANIFEST_FILE} here",
                hint="run `ebpm init NAME` to start a package, or pass its directory",
            ) from err
        return cls.loads(raw, root=root)

    @classmethod
    def loads(cls, raw: bytes, *, root: Path) -> ProjectManifest:
        """ebpm.toml's bytes `raw` as the manifest of `root` (an edit not yet written reads
        as the file would)."""
        path = root / MANIFEST_FILE
        try:
            # a byte-order mark (Windows editors write one) is not TOML, but it says nothing
            # either: read past it, as cargo does
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise ManifestError(f"{path}:{line}: not UTF-8 text (byte {raw[err.start]:#04x})",
                                hint="TOML files are UTF-8; save it as UTF-8") from err
        import tomllib  # ebpm.toml only: not on the run path

        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as err:
            raise ManifestError(f"{path}: {err}", hint="ebpm.toml is TOML (toml.io): mend it "
                                "there; docs/authoring.md shows every table") from err
        return cls.from_dict(data, root=root, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, root: Path, where: str) -> ProjectManifest:
        pkg = data.get("package")
        if not isinstance(pkg, dict):
            raise ManifestError(f"{where}: missing [package] table", hint="see docs/authoring.md")
        unknown = sorted(set(data) - {"package", "dependencies", "build", "events", "args",
                                      "metrics", "display"})
        if unknown:
            raise ManifestError(f"{where}: unknown table(s) {', '.join(unknown)}")
        known_pkg = {"name", "version", "description", "authors", "license", "source", "readme"}
        extra = sorted(set(pkg) - known_pkg)
        if extra:
            raise ManifestError(f"{where}: unknown key(s) in [package]: {', '.join(extra)}")
        name = validate_name(pkg.get("name", ""), where=f"{where}: package.name")
        version = validate_version(pkg.get("version", ""), where=f"{where}: package.version")
        authors = expect(pkg.get("authors", []), "list of strings", f"{where}: package.authors")
        text = {key: expect(pkg.get(key, ""), "string", f"{where}: package.{key}")
                for key in ("description", "license", "source", "readme")}
        for table in ("dependencies", "build", "events", "args"):
            if not isinstance(data.get(table, {}), dict):
                raise ManifestError(
                    f"{where}: {table} must be a table, written [{table}], not "
                    f"{type(data[table]).__name__} {data[table]!r}",
                    hint="see docs/authoring.md",
                )
        readme = text["readme"]
        if readme and (readme.startswith("/") or ".." in readme.split("/")):
            raise ManifestError(
                f"{where}: package.readme {readme!r} is outside the package directory",
                hint="name a file inside the package, e.g. readme = \"README.md\"",
            )
        events = data.get("events", {})
        for map_name, type_name in events.items():
            expect(type_name, "string", f"{where}: [events] {map_name}")
        args: dict[str, dict[str, Any]] = {}
        for var, entry in data.get("args", {}).items():
            expect(entry, "table", f"{where}: [args.{var}]")
            if set(entry) - {"flag", "help"}:
                raise ManifestError(
                    f"{where}: [args.{var}]: only `flag` and `help` may be set",
                    hint=f"unknown: {', '.join(sorted(set(entry) - {'flag', 'help'}))}")
            args[var] = dict(entry)
            if "flag" in entry:
                flag = expect(entry["flag"], "string", f"{where}: [args.{var}] flag")
                args[var]["flag"] = flag_option(flag, where=f"{where}: [args.{var}] flag")
            if "help" in entry:
                expect(entry["help"], "string", f"{where}: [args.{var}] help")
        return cls(
            root=root,
            name=name,
            version=version,
            description=text["description"],
            authors=tuple(authors),
            license=text["license"],
            source=text["source"],
            readme=readme,
            dependencies=dict(data.get("dependencies", {})),
            build=dict(data.get("build", {})),
            events=dict(events),
            args=args,
            metrics=metric_specs(data.get("metrics", {}), where=f"{where}: [metrics]"),
            display=_display(data.get("display", {}), where),
        )
