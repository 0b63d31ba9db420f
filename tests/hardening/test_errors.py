"""Issue 13, item 12: inputs and machine states that reached "unexpected ... report it" in
ebpm 0.1 now give a one-line error with a hint."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path

import pytest

from ebpm.errors import RegistryError
from ebpm.oci.reference import is_loopback
from ebpm.oci.remote import Registry
from ebpm.oci.transport import Transport
from tests.cli import ebpm
from tests.hardening.conftest import tiny_artifact
from tests.hostile import Hostile, redirect, run_child

U = "--allow-unsigned"


def _clean(err: str) -> None:
    assert "unexpected" not in err and "report it" not in err and "Traceback" not in err


def test_a_port_above_65535(capsys: pytest.CaptureFixture[str]) -> None:
    r = ebpm(capsys, "pull", U, "localhost:70000/r:1.0.0")
    assert r.code == 2 and "bad registry 'localhost:70000'" in r.err
    _clean(r.err)


def test_a_default_registry_that_is_no_host(capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBPM_REGISTRY", "LOCAL HOST")
    r = ebpm(capsys, "pull", U, "r:1.0.0")
    assert r.code == 2
    assert r.err.endswith("error: EBPM_REGISTRY='LOCAL HOST' is not a registry address\n"
                          "hint: export EBPM_REGISTRY=HOST[:PORT] (no scheme, no path)\n")
    _clean(r.err)


def test_capitalised_localhost_is_loopback() -> None:
    assert is_loopback("Localhost:5000") and is_loopback("LOCALHOST")
    assert Transport("Localhost:5000").scheme == "http"


def test_a_blob_redirect_to_a_file_url(hostile: Hostile) -> None:
    blobs = tiny_artifact(version="2.0.0", embed=False)  # its layer is fetched, not embedded
    hostile.add(blobs, "r", "2.0.0")
    layer = blobs.layers[0].descriptor
    hostile.on("GET", rf"/v2/r/blobs/{layer.digest}", redirect("file:///etc/passwd"))
    with pytest.raises(RegistryError, match="refusing redirect to 'file:///etc/passwd' "
                                            r"\(not http or https\)"):
        Registry(hostile.host).get_blob("r", layer.digest, size=layer.size)
    r = run_child(["pull", U, f"{hostile.host}/r:2.0.0"])
    assert r.code == 1 and "refusing redirect to 'file:///etc/passwd'" in r.err
    _clean(r.err)


def test_ebpm_home_pointing_at_a_file(hostile: Hostile, tmp_path: Path) -> None:
    home = tmp_path / "a-file"
    home.write_text("not a directory")
    r = run_child(["pull", U, f"{hostile.host}/r:1.0.0"], env={"EBPM_HOME": str(home)})
    assert r.code == 1, r.err
    assert f"error: not a directory: {home}" in r.err and "EBPM_HOME" in r.err
    _clean(r.err)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real full disk (needs root to mount)."""
    path = tmp_path / "disk"
    path.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(path)], check=True)
    yield path
    subprocess.run(["umount", "-l", str(path)], check=True)


def test_disk_full(hostile: Hostile, tiny_disk: Path) -> None:
    art = tiny_artifact(body=b"\x7fELF" + os.urandom(512 << 10))  # 512 KiB: does not fit
    hostile.add(art, "r", "2.0.0")
    r = run_child(["pull", U, f"{hostile.host}/r:2.0.0"], env={"EBPM_HOME": str(tiny_disk)})
    assert r.code == 1, r.err
    assert "error: no space left on device" in r.err and "cache prune" in r.err
    _clean(r.err)
    leftovers = [p for p in tiny_disk.rglob("*") if p.is_file() and ".tmp" in p.name]
    assert not leftovers


def test_a_store_owned_by_another_user(hostile: Hostile, tmp_path: Path) -> None:
    """As a user on root's store: the owner is someone else and we lack CAP_DAC_OVERRIDE."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("dropping capabilities needs root and setpriv")
    home = tmp_path / "store"
    home.mkdir(mode=0o755)
    os.chown(home, 4242, 4242)
    os.chmod(tmp_path, 0o755)
    r = run_child(["pull", U, f"{hostile.host}/r:1.0.0"], env={"EBPM_HOME": str(home)},
                  prefix=["setpriv", "--bounding-set",
                          "-dac_override,-dac_read_search,-fowner", "--"])
    assert r.code == 1, r.err
    assert f"error: permission denied: {home}" in r.err and "EBPM_HOME" in r.err
    _clean(r.err)


@pytest.mark.parametrize("status, body, hint", [
    (500, b"oops", "hint: the registry failed on its side (after 3 tries); try again later"),
    (503, b'{"errors": [{"code": "UNAVAILABLE", "message": "down"}]}',
     "hint: the registry failed on its side (after 3 tries); try again later"),
    (429, b"", "hint: the registry is rate-limiting (after 3 tries); try again later"),
    (403, b'{"errors": [{"code": 5, "message": {"a": 1}}]}',
     "hint: the registry refused access: log in with `ebpm login HOST`, or check your "
     "account's access"),
])
def test_a_failing_registry_gets_a_hint_about_the_registry(
        capsys: pytest.CaptureFixture[str], hostile: Hostile, status: int, body: bytes,
        hint: str) -> None:
    """Was the hint for a name that is not there (`ebpm tags ... lists its versions`), and a
    403 whose error code was a number printed `403 5`."""
    from tests.hostile import send

    def fail(h, m) -> None:  # noqa: ANN001
        send(h, status, body)

    for path in (r"/v2/r/manifests/.*", r"/v2/r/tags/list.*"):
        hostile.on("GET", path, fail).on("HEAD", path, fail)
    for args in (("pull", U, f"{hostile.host}/r:1.0.0"), ("inspect", f"{hostile.host}/r:1.0.0"),
                 ("tags", f"{hostile.host}/r")):
        r = ebpm(capsys, *args)
        lines = r.err.splitlines()
        assert r.code == 1 and lines[-1] == hint.replace("HOST", hostile.host), r.err
        said = "UNAVAILABLE: down" if status == 503 else HTTPStatus(status).phrase
        assert lines[-2].startswith("error: ") and lines[-2].endswith(f": {status} {said}")
        _clean(r.err)
