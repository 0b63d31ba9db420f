"""Fixtures for the hardening tests: a hostile registry serving one real (tiny) package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ebpm.oci.artifact import Artifact, Layer, pack
from ebpm.oci.model import BPF_OBJECT_TYPE
from ebpm.package import PackageConfig
from tests.hostile import Hostile


def tiny_artifact(version: str = "1.0.0", body: bytes = b"\x7fELF tiny object",
                  embed: bool = True) -> Artifact:
    config = PackageConfig(name="demo", version=version, description="a demo",
                           license="GPL-2.0", authors=("Ada",))
    return pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "demo.bpf.o", body)],
                annotations={"org.opencontainers.image.version": version}, embed=embed)


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    """A hostile registry on a free loopback port, serving `r:1.0.0` honestly until told to lie."""
    server = Hostile().start()
    server.add(tiny_artifact(), "r", "1.0.0")
    yield server
    server.stop()
