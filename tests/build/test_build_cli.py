"""The real CLI: `ebpm init`, `ebpm build` (text and JSON) and `ebpm publish` to a registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ebpm.package import PackageConfig
from tests.cli import ebpm
from tests.registryd import Registryd


def test_init_then_build(
    tmp_path: Path, vmlinux_h: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "execs"
    result = ebpm(capsys, "init", "execs", "--template", "ringbuf", "--dir", str(root))
    assert result.code == 0, result.err
    assert f"created {root}/execs.bpf.c" in result.out.splitlines()
    assert "ebpm build" in result.out

    result = ebpm(capsys, "build", str(root), "--vmlinux", str(vmlinux_h))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"built execs 0.1.0: {root}/.ebpm/execs.bpf.o"
    assert any(line.split()[:3] == ["program", "handle_exec", "tracepoint"] for line in lines)
    assert "  events  events -> event" in lines
    assert any(line.split()[:2] == ["arg", "--min-duration-ns"] for line in lines)
    assert "compile execs.bpf.c" in result.err

    result = ebpm(capsys, "build", str(root), "--vmlinux", str(vmlinux_h), "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert PackageConfig.from_dict(data["config"]).name == "execs"
    assert data["object"] == f"{root}/.ebpm/execs.bpf.o"
    assert data["btf"] == f"{root}/.ebpm/execs.btf" and data["wasm"] is None
    assert result.err == ""


def test_build_generates_vmlinux_into_the_store(
    tmp_path: Path, ebpm_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ebpm(capsys, "init", "gen", "--dir", str(tmp_path / "gen"))
    result = ebpm(capsys, "build", "-q", str(tmp_path / "gen"))
    assert result.code == 0, result.err
    assert result.out == ""
    cached = list((ebpm_env / "vmlinux").glob("*/vmlinux.h"))
    assert len(cached) == 1


def test_init_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = ebpm(capsys, "init", "x", "--template", "nope", "--dir", str(tmp_path / "x"))
    assert result.code == 2
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("")
    result = ebpm(capsys, "init", "full", "--dir", str(tmp_path / "full"))
    assert result.code == 2
    assert "already exists and is not empty" in result.err


@pytest.mark.registry
def test_publish_builds_and_pushes_reproducibly(
    tmp_path: Path, vmlinux_h: Path, registry: Registryd, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "opens"
    assert ebpm(capsys, "init", "opens", "--dir", str(root)).code == 0
    ref = f"{registry.host}/tools/opens:0.1.0"
    result = ebpm(capsys, "publish", str(root), ref, "--vmlinux", str(vmlinux_h), "--json")
    assert result.code == 0, result.err
    first = json.loads(result.out)
    assert first["digest"].startswith("sha256:") and first["unchanged"] is False
    assert first["build"]["config"]["name"] == "opens"

    # a rebuild gives the same bytes, so publishing again changes nothing
    result = ebpm(capsys, "publish", str(root), ref, "--vmlinux", str(vmlinux_h), "--json")
    assert result.code == 0, result.err
    again = json.loads(result.out)
    assert (again["digest"], again["unchanged"]) == (first["digest"], True)


@pytest.mark.registry
def test_publish_checks_its_target_before_compiling_and_takes_a_ref_alone(
    tmp_path: Path, vmlinux_h: Path, registry: Registryd, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad REF, --offline or a digest was refused only after the compile; one operand that is
    no directory here is REF (the package in .), as `ebpm push REF` takes it."""
    root = tmp_path / "opens"
    assert ebpm(capsys, "init", "opens", "--dir", str(root)).code == 0
    for args, code, words in (
        (("--offline", "publish", str(root), "--sign"), 1,
         "error: push: offline mode, and a push needs the registry"),
        (("publish", str(root), "BAD REF"), 2, "error: invalid reference 'BAD REF'"),
        (("publish", str(root), f"{registry.host}/t/opens@sha256:{'0' * 64}"), 2,
         "push to a tag, not a digest"),
    ):
        result = ebpm(capsys, *args, "--vmlinux", str(vmlinux_h))
        monkeypatch.delenv("EBPM_OFFLINE", raising=False)
        assert (result.code, words in result.err) == (code, True), result.err
        assert "compile" not in result.err and not (root / ".ebpm").exists()

    monkeypatch.chdir(root)
    result = ebpm(capsys, "publish", f"{registry.host}/t/opens", "--vmlinux", str(vmlinux_h))
    assert result.code == 0, result.err
    assert f"{registry.host}/t/opens:0.1.0  sha256:" in result.out
    result = ebpm(capsys, "publish", "./nope")
    assert result.code == 2 and "'./nope' does not exist" in result.err


@pytest.mark.registry
def test_build_push_and_publish_from_a_subdirectory(
    tmp_path: Path, vmlinux_h: Path, registry: Registryd, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without DIRECTORY the package is the nearest one upwards (as cargo finds Cargo.toml):
    the build goes to its .ebpm/, never to the current directory's; DIRECTORY given is used as
    given, not searched."""
    root = tmp_path / "opens"
    assert ebpm(capsys, "init", "opens", "--dir", str(root)).code == 0
    (root / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(root / "src" / "deep")
    result = ebpm(capsys, "build", "--vmlinux", str(vmlinux_h))
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == f"built opens 0.1.0: {root}/.ebpm/opens.bpf.o"
    assert (root / ".ebpm" / "config.json").is_file()
    assert not list((root / "src").rglob(".ebpm"))

    result = ebpm(capsys, "push", f"{registry.host}/sub/opens")
    assert result.code == 0, result.err
    assert result.out.startswith(f"{registry.host}/sub/opens:0.1.0  sha256:")
    result = ebpm(capsys, "publish", f"{registry.host}/sub/opens", "--vmlinux", str(vmlinux_h))
    assert result.code == 0, result.err
    assert f"{registry.host}/sub/opens:0.1.0  sha256:" in result.out and "unchanged" in result.out

    result = ebpm(capsys, "build", ".", "--vmlinux", str(vmlinux_h))
    assert (result.code, result.err.splitlines()[0]) == (
        1, f"error: {root}/src/deep/ebpm.toml: no ebpm.toml here")
    assert not list((root / "src").rglob(".ebpm"))
