"""Issue 13, item 13 (the smaller items) and the ebpm.toml inputs of item 12: `pull -o` never
lets a layer overwrite config.json nor writes through a symlink (and checks everything before
writing anything), a README outside the package is not published, and a missing store blob's
hint no longer assumes --offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpm.errors import StoreError
from ebpm.oci.artifact import Layer, pack
from ebpm.oci.layout import Store
from ebpm.oci.model import BPF_OBJECT_TYPE, README_TYPE
from ebpm.package import PackageConfig, ProjectManifest
from tests.cli import ebpm
from tests.hostile import Hostile, run_child

U = "--allow-unsigned"


def _with_layers(hostile: Hostile, layers: list[Layer]) -> None:
    config = PackageConfig(name="demo", version="3.0.0")
    hostile.add(pack(config.to_json(), layers, annotations={}), "r", "3.0.0")


def test_a_layer_titled_config_json_overwrites_nothing(hostile: Hostile, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _with_layers(hostile, [Layer(BPF_OBJECT_TYPE, "demo.bpf.o", b"\x7fELF x"),
                           Layer(README_TYPE, "config.json", b'{"evil": true}')])
    out = tmp_path / "out"
    r = ebpm(capsys, "pull", U, "-o", str(out), f"{hostile.host}/r:3.0.0")
    assert r.code == 1
    assert "layer title 'config.json' would overwrite config.json (the package metadata)" in r.err
    assert not out.exists() or list(out.iterdir()) == []


def test_pull_o_never_writes_through_a_symlink(hostile: Hostile, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _with_layers(hostile, [Layer(BPF_OBJECT_TYPE, "demo.bpf.o", b"\x7fELF x"),
                           Layer(README_TYPE, "README.md", b"# hi")])
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").symlink_to(victim)
    r = ebpm(capsys, "pull", U, "-o", str(out), f"{hostile.host}/r:3.0.0")
    assert r.code == 1
    assert f"{out / 'README.md'} is a symlink (to {victim}); refusing to write through it" in r.err
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in out.iterdir()) == ["README.md"]  # nothing else written


def _package(root: Path, readme: str) -> Path:
    root.mkdir()
    (root / "ebpm.toml").write_text(
        f'[package]\nname = "demo"\nversion = "1.0.0"\nreadme = "{readme}"\n')
    build = root / ".ebpm"
    build.mkdir()
    (build / "demo.bpf.o").write_bytes(b"\x7fELF demo")
    (build / "config.json").write_bytes(PackageConfig(name="demo", version="1.0.0").to_json())
    return root


def test_a_readme_outside_the_package_is_not_published(hostile: Hostile, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    pkg = _package(tmp_path / "abs", "/etc/hostname")
    r = ebpm(capsys, "push", str(pkg), f"{hostile.host}/r")
    assert r.code == 1
    assert "package.readme '/etc/hostname' is outside the package directory" in r.err
    pkg = _package(tmp_path / "link", "README.md")
    (pkg / "README.md").symlink_to("/etc/hostname")
    r = ebpm(capsys, "push", str(pkg), f"{hostile.host}/r")
    assert r.code == 1 and "the README leads outside the package directory" in r.err
    assert not hostile.requests("PUT", r"/v2/r/manifests/.*")


def test_a_missing_blob_does_not_blame_offline(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store(tmp_path / "s").read_blob("sha256:" + "0" * 64)
    assert "without --offline" not in (info.value.hint or "")
    assert "concurrent `ebpm rm`" in (info.value.hint or "")


def test_an_ebpm_toml_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """Editors on Windows save UTF-8 with a BOM; cargo reads such a Cargo.toml, so does ebpm
    (tomllib alone said `Invalid statement (at line 1, column 1)`)."""
    (tmp_path / "ebpm.toml").write_bytes(b'\xef\xbb\xbf[package]\nname = "d"\nversion = "1.0.0"\n')
    manifest = ProjectManifest.load(tmp_path)
    assert (manifest.name, manifest.version) == ("d", "1.0.0")


@pytest.mark.parametrize(("toml", "message"), [
    (b'[package]\nname = "d\xff"\nversion = "1.0.0"\n', "ebpm.toml:2: not UTF-8 text (byte 0xff)"),
    (b'dependencies = "abc"\n[package]\nname = "d"\nversion = "1.0.0"\n',
     "ebpm.toml: dependencies must be a table, written [dependencies], not str 'abc'"),
    (b'build = [1, 2]\n[package]\nname = "d"\nversion = "1.0.0"\n',
     "ebpm.toml: build must be a table, written [build], not list [1, 2]"),
])
def test_a_bad_ebpm_toml(tmp_path: Path, toml: bytes, message: str) -> None:
    (tmp_path / "ebpm.toml").write_bytes(toml)
    r = run_child(["lock"], cwd=tmp_path, env={"EBPM_HOME": str(tmp_path / "h")})
    assert r.code == 1, r.err
    assert message in r.err
    assert "unexpected" not in r.err and "report it" not in r.err
    assert os.path.exists(tmp_path / "ebpm.toml")
