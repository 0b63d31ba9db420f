"""Reference parsing: the shapes users type, and the ones we refuse."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ebpm.errors import InvalidReferenceError
from ebpm.oci.reference import is_loopback, is_loopback_address, parse
from ebpm.versions import tag_from_version, version_from_tag

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("opensnoop", "localhost:5000", "opensnoop", "", ""),
        ("tools/opensnoop:1.0.0", "localhost:5000", "tools/opensnoop", "1.0.0", ""),
        ("opensnoop:1.0.0+build.5", "localhost:5000", "opensnoop", "1.0.0_build.5", ""),
        ("ghcr.io/acme/opensnoop:2.1.0", "ghcr.io", "acme/opensnoop", "2.1.0", ""),
        ("localhost/x", "localhost", "x", "", ""),
        ("127.0.0.1:5000/a/b/c:latest", "127.0.0.1:5000", "a/b/c", "latest", ""),
        (f"ghcr.io/acme/x@{D}", "ghcr.io", "acme/x", "", D),
        (f"ghcr.io/acme/x:1.0.0@{D}", "ghcr.io", "acme/x", "1.0.0", D),
        ("[::1]:5000/x:1.0.0", "[::1]:5000", "x", "1.0.0", ""),
        ("my-reg.example.com:443/a__b/c-d:v1", "my-reg.example.com:443", "a__b/c-d", "v1", ""),
    ],
)
def test_parse(text: str, registry: str, repository: str, tag: str, digest: str) -> None:
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry, repository, tag, digest)


def test_default_registry_and_str_round_trip() -> None:
    ref = parse("tools/x:1.2.3", default_registry="ghcr.io")
    assert str(ref) == "ghcr.io/tools/x:1.2.3"
    assert parse(str(ref)) == ref
    assert ref.version == "1.2.3"
    assert ref.identifier == "1.2.3"
    assert ref.with_digest(D).identifier == D


@pytest.mark.parametrize(
    "text",
    ["", " x", "UPPER/case", "x:", "x:bad tag", "x@sha256:123", "http://localhost:5000/x",
     "a//b", "x:" + "a" * 129, "-x", "x/", "localhost:5000/", "x@md5:" + "a" * 32,
     "bad_host:port/x"],
)
def test_malformed(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as err:
        parse(text)
    assert err.value.hint


def test_version_tags() -> None:
    assert tag_from_version("1.0.0+build.1") == "1.0.0_build.1"
    assert version_from_tag("1.0.0_build.1") == "1.0.0+build.1"


@pytest.mark.parametrize(
    ("host", "loop"),
    [("localhost:5000", True), ("127.0.0.1:5000", True), ("127.3.4.5", True),
     ("[::1]:5000", True), ("ghcr.io", False), ("10.0.0.1:5000", False),
     ("registry.localhost", True)],
)
def test_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


_ADDRESS_PARTS = st.sampled_from(["127", "0", "1", "255", "256", "01", "00", "1.", ".", ":",
                                  "::", "1", "ffff", "0000", "00001", "%", "%lo", "%%",
                                  " ", "\x00", "x", "1234", "127.0.0.1", "0.0.0.1", "[", "]"])


@given(st.one_of(st.lists(_ADDRESS_PARTS, max_size=9).map("".join), st.text(max_size=20),
                 st.ip_addresses().map(str),
                 st.tuples(st.ip_addresses(v=6).map(str), st.text(max_size=4)).map("%".join)))
@example("::ffff:127.0.0.1")
@example("::0.0.0.1")
@example("::1%lo")
@example("::1%/")
@example("127.0.0.01")
@example("１２７.0.0.1")
def test_loopback_address_is_what_ipaddress_says(host: str) -> None:
    """`is_loopback_address` (inet_pton, no ipaddress import on a pull) answers as
    ipaddress.ip_address(host).is_loopback does, for addresses and for anything else."""
    import ipaddress

    try:
        want = ipaddress.ip_address(host).is_loopback
    except ValueError:
        want = False
    assert is_loopback_address(host) is want


# distribution's reference grammar as patterns: what the reference module checks without them
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_GRAMMAR = {
    "repository": rf"{_COMPONENT}(?:/{_COMPONENT})*",
    "tag": r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}",
    "host": r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*"
            r"[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?",
}
_GRAMMAR_PARTS = st.sampled_from(["a", "z9", "0", "A", "Q", "-", "--", ".", "..", "_", "__",
                                  "___", "/", "//", ":", "5000", "123456", "[", "]", "::1",
                                  "fe80", " ", "\n", "é", "٣", "x" * 60, "+", "@"])


@given(st.one_of(st.lists(_GRAMMAR_PARTS, max_size=10).map("".join), st.text(max_size=12),
                 st.integers(120, 135).map(lambda n: "a" * n)))
@example("a__b-c.d_e/f--g")
@example("a._b")
@example("[::1]:5000")
@example("[::1]]")
@example("[]")
@example("localhost:")
@example("-a.b")
@example("a b")
@example("a-")
@example("ab-.c:1")
@example("h:123456")
@example("h:12345")
@example("a/b_")
def test_reference_grammar_is_the_patterns(text: str) -> None:
    """The repository, tag and host checks (character sets, no patterns compiled at import)
    accept exactly what distribution's patterns fully match (a host's port also 1-65535:
    ebpm.config.is_registry_host, the one check of a registry's name)."""
    import re

    from ebpm.config import is_registry_host
    from ebpm.oci import reference

    checks = {"repository": reference.is_repository, "tag": reference.is_tag,
              "host": is_registry_host}
    for name, pattern in _GRAMMAR.items():
        expected = bool(re.fullmatch(pattern, text))
        if name == "host" and expected:
            port = (text.rpartition("]")[2] if text.startswith("[")
                    else text.partition(":")[2]).removeprefix(":")
            expected = not port or 0 < int(port) <= 65535
        assert checks[name](text) is expected, name
