"""Session-wide fixtures: a real registry and an isolated ebpm home for every test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registryd import Registryd, start_registry


@pytest.fixture(scope="session")
def registry() -> Iterator[Registryd]:
    """A plain (anonymous, http) distribution registry on a free loopback port."""
    reg = start_registry()
    yield reg
    reg.stop()
    shutil.rmtree(reg.root, ignore_errors=True)


@pytest.fixture(autouse=True)
def ebpm_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty store and config dir, online, with no docker credentials."""
    home = tmp_path / "ebpm-home"
    monkeypatch.setenv("EBPM_HOME", str(home))
    monkeypatch.setenv("EBPM_CONFIG", str(tmp_path / "ebpm-config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.delenv("EBPM_OFFLINE", raising=False)
    monkeypatch.delenv("EBPM_REGISTRY", raising=False)
    return home

