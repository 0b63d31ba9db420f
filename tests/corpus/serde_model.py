"""eunomia-bpf's package.json format, read from the reference reader's own source.

`reference/meta-mod.rs` is bpf-loader-rs's `meta/mod.rs`, vendored unmodified: the serde
structs ecli deserializes a package.json into. `Model.parse()` reads its `struct`/`enum`
definitions mechanically (field names, `rename`, `default`, `Option`, `DefaultOnNull`,
`flatten`, externally tagged enums), and `Model.check(value, "ComposedObjectInner")` applies
serde_json's rules to a JSON value: every field without a default present, null only where
allowed, integers in their type's range, enum tags known, unknown keys ignored (no
`deny_unknown_fields` there). `check_export_types` is `export_event/checker.rs`'s
`check_export_types_btf` (also vendored) written again in Python over ebpm's BTF parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parent / "eunomia-bpf" / "reference"
_INT_RANGES = {"u32": (0, 2**32 - 1), "usize": (0, 2**64 - 1), "i32": (-(2**31), 2**31 - 1)}


@dataclass
class Field:
    name: str  # the JSON key (after rename)
    type: str
    default: bool = False  # #[serde(default ...)]: may be missing
    null_is_default: bool = False  # serde_with DefaultOnNull
    flatten: bool = False


@dataclass
class Variant:
    name: str  # the JSON tag (after rename)
    payload: str | list[Field] | None = None  # newtype type, struct fields, or unit


@dataclass
class Model:
    structs: dict[str, list[Field]] = field(default_factory=dict)
    enums: dict[str, list[Variant]] = field(default_factory=dict)

    @classmethod
    def parse(cls, source: str | None = None) -> Model:
        text = source if source is not None else (REFERENCE / "meta-mod.rs").read_text()
        text = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)
        model = cls()
        for m in re.finditer(r"pub(?:\(crate\))? (struct|enum) (\w+)\s*\{", text):
            body = _braced(text, m.end() - 1)
            if m[1] == "struct":
                model.structs[m[2]] = _fields(body)
            else:
                model.enums[m[2]] = _variants(body)
        return model

    def check(self, value: Any, type_: str, path: str = "$") -> None:
        """Raise ValueError(path: why) where serde_json would refuse `value` as `type_`."""
        generic = re.fullmatch(r"(Vec|Option)<(.+)>", type_)
        if generic and generic[1] == "Option":
            if value is not None:
                self.check(value, generic[2], path)
            return
        if generic:
            if not isinstance(value, list):
                raise ValueError(f"{path}: expected a sequence")
            for i, item in enumerate(value):
                self.check(item, generic[2], f"{path}[{i}]")
            return
        if type_ == "Value":
            return
        if type_ == "String":
            _expect(isinstance(value, str), path, "a string")
        elif type_ == "bool":
            _expect(isinstance(value, bool), path, "a boolean")
        elif type_ in _INT_RANGES:
            lo, hi = _INT_RANGES[type_]
            _expect(isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi,
                    path, f"an integer in {type_}'s range")
        elif type_ in self.structs:
            self._struct(value, self.structs[type_], path)
        elif type_ in self.enums:
            self._enum(value, self.enums[type_], path)
        else:
            raise ValueError(f"{path}: the model has no type {type_}")

    def _struct(self, value: Any, fields: list[Field], path: str) -> None:
        _expect(isinstance(value, dict), path, "a map")
        for f in fields:
            if f.flatten:
                continue
            if f.name not in value or (value[f.name] is None and f.null_is_default):
                if not (f.default or f.null_is_default or f.type.startswith("Option<")):
                    raise ValueError(f"{path}: missing field `{f.name}`")
                continue
            self.check(value[f.name], f.type, f"{path}.{f.name}")

    def _enum(self, value: Any, variants: list[Variant], path: str) -> None:
        by_tag = {v.name: v for v in variants}
        if isinstance(value, str):
            v = by_tag.get(value)
            _expect(v is not None and v.payload is None, path, f"a unit variant of {list(by_tag)}")
            return
        _expect(isinstance(value, dict) and len(value) == 1, path, "an enum tag")
        ((tag, inner),) = value.items()
        v = by_tag.get(tag)
        _expect(v is not None and v.payload is not None, path, f"a variant of {list(by_tag)}")
        assert v is not None
        if isinstance(v.payload, str):
            self.check(inner, v.payload, f"{path}.{tag}")
        elif isinstance(v.payload, list):
            self._struct(inner, v.payload, f"{path}.{tag}")


def _expect(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise ValueError(f"{path}: expected {what}")


def _braced(text: str, start: int) -> str:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    raise ValueError("unbalanced braces")


def _attrs(block: str) -> tuple[str | None, bool, bool, bool]:
    rename = re.search(r'rename\s*=\s*"([^"]+)"', block)
    default = bool(re.search(r"serde\([^)]*\bdefault\b", block))
    on_null = "DefaultOnNull" in block
    flatten = bool(re.search(r"serde\([^)]*\bflatten\b", block))
    return (rename[1] if rename else None), default, on_null, flatten


_FIELD = re.compile(r"((?:\s*#\[[^\n]*\]\s*)*)\s*pub(?:\(crate\))?\s+(\w+)\s*:\s*([^,]+?),",
                    re.DOTALL)


def _fields(body: str) -> list[Field]:
    out = []
    for m in _FIELD.finditer(body):
        rename, default, on_null, flatten = _attrs(m[1])
        out.append(Field(rename or m[2], re.sub(r"\s+", "", m[3]), default, on_null, flatten))
    return out


def _variants(body: str) -> list[Variant]:
    out = []
    pos = 0
    pattern = re.compile(r"((?:\s*#\[[^\n]*\]\s*)*)\s*(\w+)\s*(\(([^)]*)\)|\{)?\s*,?")
    while pos < len(body):
        m = pattern.match(body, pos)
        if m is None or not m[2]:
            break
        rename, *_ = _attrs(m[1])
        name = rename or m[2]
        if m[3] == "{":
            inner = _braced(body, m.end(3) - 1)
            fields = [Field(*_named(x)) for x in _struct_variant_fields(inner)]
            out.append(Variant(name, fields))
            pos = m.end(3) + len(inner) + 1  # past the closing brace
            comma = re.match(r"\s*,", body[pos:])
            pos += comma.end() if comma else 0
        else:
            out.append(Variant(name, re.sub(r"\s+", "", m[4]) if m[4] is not None else None))
            pos = m.end()
    return out


def _struct_variant_fields(body: str) -> list[tuple[str, str, str]]:
    return [(m[1], m[2], m[3]) for m in re.finditer(
        r"((?:\s*#\[[^\n]*\]\s*)*)\s*(\w+)\s*:\s*([^,]+?),", body, re.DOTALL)]


def _named(item: tuple[str, str, str]) -> tuple[str, str, bool, bool, bool]:
    rename, default, on_null, flatten = _attrs(item[0])
    return rename or item[1], re.sub(r"\s+", "", item[2]), default, on_null, flatten


def check_export_types(meta: dict[str, Any], obj: bytes) -> None:
    """checker.rs's `check_export_types_btf` for every export type, over the object's BTF."""
    from ebpm.loader.btf import Btf, Kind

    btf = Btf.parse(obj)
    for struct_meta in meta.get("export_types", []):
        type_id = struct_meta["type_id"]
        try:
            t = btf.types[type_id]
        except (IndexError, KeyError) as err:
            raise ValueError(f"type id {type_id} is invalid") from err
        if t.kind != Kind.STRUCT:
            raise ValueError(f"type id {type_id} is not struct")
        if t.name != struct_meta["name"]:
            raise ValueError(f"type names don't match: `{t.name}` from btf, but "
                             f"`{struct_meta['name']}` from struct_meta")
        if len(t.members) != len(struct_meta["members"]):
            raise ValueError("Unmatched member count")
        for btf_mem, meta_mem in zip(t.members, struct_meta["members"], strict=True):
            if btf_mem.name != meta_mem["name"]:
                continue
            if btf_mem.bit_offset % 8 or btf_mem.bitfield_size % 8:
                raise ValueError(f"Bitfield is not supported. Member {btf_mem.name}")
