"""ebpm.limits: each cap read from its environment variable when asked for (a change is seen
at once), one variable per cap asked (a transfer asks at every request), a value parsed once,
an invalid value refused when its cap is used."""

from __future__ import annotations

import os

import pytest

from ebpm import limits as limits_module
from ebpm.errors import UsageError
from ebpm.limits import limits


class _Counting(dict):  # type: ignore[type-arg]
    """os.environ's stand-in that counts what is read."""

    def __init__(self, base: dict[str, str]) -> None:
        super().__init__(base)
        self.read: list[str] = []

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.append(key)
        return super().get(key, default)


def test_a_change_of_the_environment_is_seen_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EBPM_MAX_MANIFEST_SIZE", raising=False)
    assert limits().manifest_size == 4 << 20
    monkeypatch.setenv("EBPM_MAX_MANIFEST_SIZE", "1K")
    assert limits().manifest_size == 1024
    monkeypatch.setenv("EBPM_MAX_MANIFEST_SIZE", " 2k ")
    assert limits().manifest_size == 2048
    monkeypatch.setenv("EBPM_MAX_MANIFEST_SIZE", "  ")  # blank: the default
    assert limits().manifest_size == 4 << 20
    monkeypatch.setenv("EBPM_TRANSFER_DEADLINE", "2.5")
    monkeypatch.setenv("EBPM_MAX_REFERRERS", "7")
    assert (limits().transfer_deadline, limits().referrers) == (2.5, 7)


def test_a_cap_reads_its_own_variable_and_parses_a_value_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    env = _Counting({**os.environ, "EBPM_MAX_PACKAGE_SIZE": "3M"})
    monkeypatch.setattr(os, "environ", env)
    parsed: list[str] = []
    parse_size = limits_module.parse_size

    def counting(text: str, **kw: str) -> int:
        parsed.append(text)
        return parse_size(text, **kw)

    monkeypatch.setattr(limits_module, "parse_size", counting)
    monkeypatch.setattr(limits_module, "_PARSED", {})
    for _ in range(3):
        assert limits().package_size == 3 << 20
    assert env.read == ["EBPM_MAX_PACKAGE_SIZE"] * 3
    assert parsed == ["3M"]


@pytest.mark.parametrize(("var", "value", "cap"), [
    ("EBPM_MAX_PACKAGE_SIZE", "lots", "package_size"),
    ("EBPM_MAX_ARCHIVE_MEMBERS", "-3", "archive_members"),
    ("EBPM_TRANSFER_DEADLINE", "0", "transfer_deadline"),
    ("EBPM_TRANSFER_DEADLINE", "inf", "transfer_deadline"),
])
def test_an_invalid_value_is_refused_when_its_cap_is_used(
        monkeypatch: pytest.MonkeyPatch, var: str, value: str, cap: str) -> None:
    monkeypatch.setenv(var, value)
    assert limits().manifest_size > 0  # the others are unaffected
    with pytest.raises(UsageError, match=var):
        getattr(limits(), cap)
