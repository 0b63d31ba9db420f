"""Reproducible builds: the same sources give the same bytes and digest in any directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpm.build import build
from ebpm.build.scaffold import init_package
from ebpm.transfer.pack import pack_path


@pytest.mark.parametrize("template", ["tracepoint", "hist"])
def test_two_directories_give_identical_bytes_and_digest(
    tmp_path: Path, vmlinux_h: Path, monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = tmp_path / "a" / "pkg"
    second = tmp_path / "somewhere-much-longer" / "nested" / "pkg"
    init_package("pkg", template=template, directory=first)
    init_package("pkg", template=template, directory=second)
    one = build(first, vmlinux_h=vmlinux_h)
    two = build(second, vmlinux_h=vmlinux_h)
    assert one.object_path.read_bytes() == two.object_path.read_bytes()
    assert one.config_path.read_bytes() == two.config_path.read_bytes()
    assert one.btf_path is not None and two.btf_path is not None
    assert one.btf_path.read_bytes() == two.btf_path.read_bytes()
    for result in (one, two):
        data = result.object_path.read_bytes()
        assert str(tmp_path).encode() not in data
        assert b"somewhere-much-longer" not in data
    assert pack_path(first).digest == pack_path(second).digest

    # and a rebuild in place changes nothing
    again = build(first, vmlinux_h=vmlinux_h)
    assert again.object_path.read_bytes() == one.object_path.read_bytes()
