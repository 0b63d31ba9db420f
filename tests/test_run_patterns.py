"""What `ebpm run` checks on the way to its first event without compiling a pattern (its
compiles cost ~3 ms of the start while libbpf loads: docs/architecture.md, the run's eighth
round): each check is cross-checked by hypothesis against the pattern it replaces."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from ebpm.loader import tracelog
from ebpm.loader.decode import _enum_slot
from ebpm.loader.display import is_scratch_map
from ebpm.loader.events import _type_id
from ebpm.loader.snapshots import _named_like_a_result
from ebpm.package import is_name

_WORDS = ["start", "ts", "time", "entries", "args", "birth", "hist", "count", "stat",
          "result", "summary", "struct", "union", "enum", "x", "v4"]


def _names(alphabet: str) -> st.SearchStrategy[str]:
    """Names made of the patterns' words, separators and odd characters."""
    return st.lists(st.one_of(st.sampled_from(_WORDS), st.text(alphabet, max_size=3)),
                    max_size=5).map("".join)


@given(_names("aZ09._-\n \u00e9\u00b2"))
@settings(max_examples=500, deadline=None)
def test_package_names_are_the_pattern(name: str) -> None:
    assert is_name(name) == bool(re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*", name))


@given(_names("aZ_0s-T"))
@settings(max_examples=500, deadline=None)
def test_scratch_and_result_map_names_are_the_patterns(name: str) -> None:
    assert is_scratch_map(name) == bool(re.search(
        r"(^|_)(start|starts|ts|tstamp|stamp|time|entry|entries|args|pending|inflight|infly|"
        r"tmp|temp|heap|scratch|stash|execs|values|currsock|sockets|birth)(_|$)", name,
        re.IGNORECASE))
    assert _named_like_a_result(name) == bool(
        re.search(r"(?i)hist|count|stat|total|result|summary", name))


class _Found:
    def __init__(self, name: str) -> None:
        self.id = name


class _Btf:
    """A BTF whose every type is found, by the name asked for."""

    def find(self, name: str, *kinds: object) -> _Found:
        return _Found(name)


@given(_names("ab \t\n_"))
@settings(max_examples=500, deadline=None)
def test_an_event_types_bare_name_is_the_pattern(type_name: str) -> None:
    found = _type_id(type_name, (_Btf(),))  # type: ignore[arg-type]
    assert found is not None
    assert found[1] == re.sub(r"^(struct|union|enum)\s+", "", type_name.strip())


@given(st.lists(st.sampled_from(["_e1", ".get(", "v[", "]", "1", "23", ", ", ")", "x", " ",
                                 "v[1]", ".get(v[2], v[2])"]), max_size=8).map("".join))
@settings(max_examples=800, deadline=None)
def test_an_enum_fields_raw_value_is_the_pattern(expr: str) -> None:
    m = re.search(r"\.get\((v\[\d+\]), v\[\d+\]\)$", expr)
    assert _enum_slot(expr) == (m.group(1) if m else None)


def _calls_by_pattern(code: bytes, little: bool) -> bool:
    call = (rb"\x85[\x00-\x0f]\x00\x00(?:\x06|\xb1)\x00\x00\x00" if little else
            rb"\x85[\x00\x10\x20\x30\x40\x50\x60\x70\x80\x90\xa0\xb0\xc0\xd0\xe0\xf0]"
            rb"\x00\x00\x00\x00\x00(?:\x06|\xb1)")
    return any(m.start() % 8 == 0 for m in re.finditer(call, code, re.DOTALL))


_INSNS = [b"\x85\x00\x00\x00\x06\x00\x00\x00", b"\x85\x01\x00\x00\xb1\x00\x00\x00",
          b"\x85\x10\x00\x00\x06\x00\x00\x00", b"\x85\x00\x00\x00\x00\x00\x00\x06",
          b"\x85\x10\x00\x00\x00\x00\x00\xb1", b"\x85\x01\x00\x00\x00\x00\x00\x06",
          b"\x85\x00\x01\x00\x06\x00\x00\x00", b"\xb7\x01\x00\x00\x06\x00\x00\x00",
          b"\x00" * 8, b"\x06\x00\x00\x00\x85\x00\x00\x00"]


@given(st.lists(st.one_of(st.sampled_from(_INSNS), st.binary(max_size=3)), max_size=8)
       .map(b"".join), st.booleans())
@settings(max_examples=800, deadline=None)
def test_a_printk_call_is_found_as_the_pattern_found_it(code: bytes, little: bool) -> None:
    """(The pattern's matches at 8-byte boundaries; unlike it, no unaligned match hides an
    aligned one that overlaps it.)"""
    if _calls_by_pattern(code, little):
        assert tracelog._calls_printk(code, little)
    aligned = [code[i:i + 8] for i in range(0, len(code) - 7, 8)]
    assert tracelog._calls_printk(code, little) == any(
        _calls_by_pattern(insn, little) for insn in aligned)
