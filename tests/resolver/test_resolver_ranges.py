"""Semver ranges: the table of what each operator admits, bad input, and properties."""

from __future__ import annotations

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from ebpm.errors import ManifestError
from ebpm.resolver.ranges import parse_range
from ebpm.versions import parse_version

# range, versions inside, versions outside
TABLE = [
    ("1.2.3", ["1.2.3", "1.2.3+b1"], ["1.2.4", "1.2.2", "1.2.3-rc.1"]),
    ("=1.2.3", ["1.2.3"], ["1.2.4"]),
    ("1.2", ["1.2.0", "1.2.99"], ["1.3.0", "1.1.9", "1.2.5-rc.1"]),
    ("1", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
    ("1.x", ["1.0.0", "1.5.5"], ["2.0.0"]),
    ("1.2.*", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0", "2.0.0-alpha", "1.5.0-rc.1"]),
    ("^1.2", ["1.2.0", "1.99.99"], ["1.1.0", "2.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.99"], ["0.3.0", "0.2.2"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
    ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
    ("^0", ["0.0.0", "0.9.9"], ["1.0.0"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
    ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    (">=1.2", ["1.2.0", "9.0.0"], ["1.1.9", "2.0.0-rc.1"]),
    (">1.2", ["1.3.0"], ["1.2.9"]),
    (">1.2.3", ["1.2.4"], ["1.2.3"]),
    ("<1.2", ["1.1.9"], ["1.2.0", "1.2.0-rc.1"]),
    ("<=1.2", ["1.2.9"], ["1.3.0"]),
    ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
    (">=1.0, <2", ["1.0.0", "1.9.9"], ["2.0.0", "0.9.9"]),
    (">= 1.0 < 2", ["1.5.0"], ["2.0.0"]),
    ("^1 || ^3", ["1.1.0", "3.3.0"], ["2.0.0"]),
    ("1.2.3 - 2.3", ["1.2.3", "2.3.9"], ["2.4.0", "1.2.2"]),
    ("*", ["0.0.0", "1.0.0", "99.0.0"], ["1.0.0-rc.1"]),
    ("", ["1.0.0"], []),
    ("^1.2.0-beta.2", ["1.2.0-beta.2", "1.2.0-beta.10", "1.2.0", "1.4.0"],
     ["1.2.0-beta.1", "1.2.0-alpha", "1.3.0-beta.3"]),
    (">=1.0.0-rc.1, <1.0.0", ["1.0.0-rc.1", "1.0.0-rc.2"], ["1.0.0", "0.9.0"]),
]


@pytest.mark.parametrize(("text", "inside", "outside"), TABLE, ids=[t[0] or "empty" for t in TABLE])
def test_range_table(text: str, inside: list[str], outside: list[str]) -> None:
    r = parse_range(text)
    for v in inside:
        assert v in r, f"{v} should be in {text!r} ({r.normalized()})"
    for v in outside:
        assert v not in r, f"{v} should not be in {text!r} ({r.normalized()})"


@pytest.mark.parametrize(
    "bad", ["^", ">=", "1.2.3.4", "^1.2.x-beta", "abc", ">=1.0,,<2", "1.02.3", "~>1.0", "1.0 ||| 2",
            "^0.1 ||", "|| ^0.1", "^0.1 || || ^0.2", "^0.1 ||  ", "||"]
)
def test_bad_ranges(bad: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_range(bad)
    assert bad in info.value.message
    assert info.value.hint


def test_exactness_and_normalized() -> None:
    assert parse_range("1.2.3").is_exact
    assert not parse_range("^1.2.3").is_exact
    assert parse_range("^1.2").normalized() == ">=1.2.0, <2.0.0-0"


versions = st.builds(
    lambda a, b, c: semver.Version(a, b, c),
    st.integers(0, 6), st.integers(0, 6), st.integers(0, 6),
)


@given(versions, versions)
def test_caret_matches_the_cargo_rule(base: semver.Version, v: semver.Version) -> None:
    inside = v in parse_range(f"^{base}")
    if base.major > 0:
        want = v.major == base.major and v >= base
    elif base.minor > 0:
        want = v.major == 0 and v.minor == base.minor and v >= base
    else:
        want = v == base
    assert inside == want


@given(versions, versions)
def test_tilde_and_comparisons(base: semver.Version, v: semver.Version) -> None:
    assert (v in parse_range(f"~{base}")) == (
        v.major == base.major and v.minor == base.minor and v >= base
    )
    assert (v in parse_range(f">={base}")) == (v >= base)
    assert (v in parse_range(f"<{base}")) == (v < base)
    assert (v in parse_range(f">={base} || <{base}"))
    assert (v in parse_range(f"{base}")) == (v == base)


@given(versions, st.sampled_from(["alpha", "rc.1", "0"]))
def test_prereleases_need_to_be_named(v: semver.Version, pre: str) -> None:
    p = v.replace(prerelease=pre)
    assert p not in parse_range("*")
    assert p not in parse_range(f">={v.major}.0.0")
    assert p in parse_range(f">={p}")


def test_parse_version_rejects_loose_forms() -> None:
    for bad in ["v1.0.0", "1.0", "01.0.0", "latest"]:
        with pytest.raises(ManifestError):
            parse_version(bad)
