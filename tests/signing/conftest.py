"""Fixtures for the signing tests: an isolated system policy dir and helpers to make keys."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read the machine's /etc/ebpm: every test gets an empty system config dir."""
    path = tmp_path / "ebpm-system"
    path.mkdir()
    monkeypatch.setenv("EBPM_SYSTEM_CONFIG", str(path))
    monkeypatch.delenv("EBPM_KEY_PASSWORD", raising=False)
    monkeypatch.delenv("EBPM_SIGNING_KEY", raising=False)
    return path
