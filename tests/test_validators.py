"""Every validator is anchored at both ends: a trailing newline or a NUL byte never passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.errors import EbpmError, InvalidReferenceError, ManifestError
from ebpm.oci.artifact import safe_title
from ebpm.oci.reference import parse
from ebpm.package import validate_name, validate_version
from ebpm.resolver.dependency import parse_dependency
from ebpm.resolver.lockfile import LockEntry
from ebpm.resolver.ranges import parse_range
from ebpm.versions import is_version, parse_version

D = "sha256:" + "ab" * 32
BAD_ENDS = ["\n", "\x00", "\r\n", " "]


@pytest.mark.parametrize("end", BAD_ENDS)
def test_names_and_versions(end: str) -> None:
    assert validate_name("foo") == "foo"
    with pytest.raises(ManifestError):
        validate_name("foo" + end)
    assert validate_version("1.2.3") == "1.2.3"
    with pytest.raises(ManifestError):
        validate_version("1.2.3" + end)
    assert is_version("1.2.3+build.1") and not is_version("1.2.3" + end)
    with pytest.raises(ManifestError):
        parse_version("1.2.3" + end)


@pytest.mark.parametrize("end", BAD_ENDS)
@pytest.mark.parametrize(
    "text",
    ["localhost:5000/x:1.0.0{end}", "localhost:5000/x{end}", f"localhost:5000/x@{D}{{end}}",
     "ghcr.io{end}/x"],
)
def test_references(text: str, end: str) -> None:
    parse(text.format(end=""))
    with pytest.raises(InvalidReferenceError):
        parse(text.format(end=end))


@pytest.mark.parametrize("end", BAD_ENDS)
def test_layer_titles_ranges_and_dependencies(end: str) -> None:
    assert safe_title("x.bpf.o") == "x.bpf.o"
    with pytest.raises(ManifestError):
        safe_title("x.bpf.o" + end)
    assert parse_range("^1.2").allows("1.3.0")
    with pytest.raises(ManifestError):  # whitespace separates comparators; NUL is in none
        parse_range("^1.2\x00")
    parse_dependency("a", {"ref": "ghcr.io/acme/a", "version": "^1"}, default_registry="r:1")
    with pytest.raises(ManifestError):
        parse_dependency("a", {"ref": "ghcr.io/acme/a" + end, "version": "^1"},
                         default_registry="r:1")
    with pytest.raises(ManifestError):
        parse_dependency("a", {"url": "https://x/a.o", "sha256": "ab" * 32 + end},
                         default_registry="r:1")


@pytest.mark.parametrize("end", BAD_ENDS)
def test_lock_entries(end: str) -> None:
    good = LockEntry("r:1/a", "1.0.0", tag="1.0.0", manifest_digest=D)
    good.check("ebpm.lock")
    for bad in (LockEntry("r:1/a", "1.0.0", tag="1.0.0", manifest_digest=D + end),
                LockEntry("r:1/a", "1.0.0" + end, tag="1.0.0" + end, manifest_digest=D),
                LockEntry("url:https://x/a.o", kind="url", url="https://x/a.o",
                          sha256="ab" * 32 + end)):
        with pytest.raises(EbpmError):
            bad.check("ebpm.lock")


@pytest.mark.parametrize("end", BAD_ENDS)
def test_key_names_and_trust_scopes(end: str, tmp_path: Path) -> None:
    from ebpm.trust.keys import generate
    from ebpm.trust.policy import add_trust

    with pytest.raises(EbpmError, match="invalid key name"):
        generate("foo" + end, directory=tmp_path / "keys")
    assert not (tmp_path / "keys").exists() or not any((tmp_path / "keys").iterdir())
    with pytest.raises(EbpmError, match="invalid scope"):
        add_trust("localhost:5000/**" + end, None, path=tmp_path / "policy.toml")
    assert not (tmp_path / "policy.toml").exists()
