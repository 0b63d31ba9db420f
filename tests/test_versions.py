"""The one version module: semver checks, tags, ordering, the latest release."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ebpm.versions import (
    is_version,
    is_version_tag,
    latest_release,
    latest_version,
    parse_version,
    sorted_versions,
    tag_from_version,
    tag_versions,
    version_from_tag,
)


@pytest.mark.parametrize("text", ["1.2.3", "0.0.0", "1.2.3-rc.1", "1.2.3+b.5", "1.0.0-a.1+b"])
def test_versions_and_their_tags(text: str) -> None:
    assert is_version(text)
    assert str(parse_version(text)) == text
    tag = tag_from_version(text)
    assert "+" not in tag and version_from_tag(tag) == text and is_version_tag(tag)


@pytest.mark.parametrize("text", ["1.2", "v1.2.3", "01.2.3", "1.2.3\n", "1.2.3\x00", " 1.2.3",
                                  "1.2.3-", "latest", "", "1.2.3+"])
def test_not_versions(text: str) -> None:
    assert not is_version(text)


def test_ordering_and_latest() -> None:
    tags = ["latest", "1.10.0", "1.2.0", "1.2.0-rc.1", "0.1.0_build.5", "sha256-ab.sig", "1.2.0"]
    assert sorted_versions(tags) == ["0.1.0_build.5", "1.2.0-rc.1", "1.2.0", "1.10.0"]
    assert [t for _, t in tag_versions(tags)] == sorted_versions(tags)
    assert latest_version(tags) == "1.10.0"
    assert latest_version(["2.0.0-rc.1", "1.0.0"]) == "1.0.0"  # releases before pre-releases
    assert latest_version(["2.0.0-rc.1", "2.0.0-rc.2"]) == "2.0.0-rc.2"  # only pre-releases
    assert latest_version(["latest", "main"]) is None
    assert latest_release([]) is None
    assert str(latest_release([parse_version("1.0.0"), parse_version("1.1.0-a")])) == "1.0.0"


@given(st.one_of(st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
                 st.text(alphabet="0123456789.-+abc\n ", max_size=14), st.text(max_size=14)))
def test_the_plain_form_is_answered_as_the_regex_would(text: str) -> None:
    """is_version answers MAJOR.MINOR.PATCH without compiling semver.org's expression."""
    import re

    from ebpm.versions import SEMVER_PATTERN

    assert is_version(text) == (re.fullmatch(SEMVER_PATTERN, text) is not None)
