"""A package with an app.c: `ebpm build` also makes its WebAssembly userspace, reproducibly."""

from __future__ import annotations

import shutil
from pathlib import Path

from ebpm.build import build
from ebpm.transfer.pack import pack_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "wasm-execsnoop"


def test_app_c_becomes_the_wasm_layer(tmp_path: Path, vmlinux_h: Path) -> None:
    one = tmp_path / "one" / "execsnoop"
    two = tmp_path / "two" / "deeper" / "execsnoop"
    for target in (one, two):
        shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".ebpm"))
    first = build(one, vmlinux_h=vmlinux_h)
    second = build(two, vmlinux_h=vmlinux_h)
    assert first.wasm_path == one / ".ebpm" / "execsnoop.wasm"
    assert first.wasm_path.read_bytes()[:4] == b"\0asm"
    assert second.wasm_path is not None
    assert first.wasm_path.read_bytes() == second.wasm_path.read_bytes()
    assert pack_path(one).digest == pack_path(two).digest


def test_prebuilt_wasm_is_shipped_and_dropped_when_gone(tmp_path: Path, vmlinux_h: Path) -> None:
    root = tmp_path / "execsnoop"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".ebpm", "app.c"))
    (root / "guest.wasm").write_bytes(b"\0asm\x01\0\0\0")
    manifest = root / "ebpm.toml"
    manifest.write_text(manifest.read_text() + '\n[build]\nwasm = "guest.wasm"\n')
    result = build(root, vmlinux_h=vmlinux_h)
    assert result.wasm_path is not None
    assert result.wasm_path.read_bytes() == b"\0asm\x01\0\0\0"
    manifest.write_text(manifest.read_text().replace('wasm = "guest.wasm"', ""))
    assert build(root, vmlinux_h=vmlinux_h).wasm_path is None
    assert not result.wasm_path.exists()
