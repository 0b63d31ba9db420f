"""Issue 13, item 3 and the signature part of item 1: a signature manifest with many layers is
refused without a GET per layer, layers of media types ebpm does not verify are never fetched
(a 3 GiB junk layer costs nothing), and a pull killed mid-download leaves a staging directory
that the next pull removes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from ebpm.oci.model import COSIGN_SIMPLESIGNING_TYPE, Descriptor, Manifest, sha256_digest
from ebpm.oci.signature import signature_tag
from tests.hardening.conftest import tiny_artifact
from tests.hostile import EBPM, Hostile, run_child, stream, zeros, zeros_digest

MB = 1 << 20
U = "--allow-unsigned"


def _sig_manifest(hostile: Hostile, layers: list[Descriptor]) -> None:
    config = b"{}"
    hostile.blobs[sha256_digest(config)] = config
    manifest = Manifest(config=Descriptor("application/vnd.oci.image.config.v1+json",
                                          sha256_digest(config), len(config)),
                        layers=tuple(layers), annotations={})
    hostile.put_manifest("r", signature_tag(tiny_artifact().digest), manifest.to_bytes())


def test_a_signature_with_a_thousand_layers_is_refused(hostile: Hostile) -> None:
    layers = [Descriptor(COSIGN_SIMPLESIGNING_TYPE, sha256_digest(b"%d" % i), 10)
              for i in range(1000)]
    _sig_manifest(hostile, layers)
    r = run_child(["pull", U, f"{hostile.host}/r:1.0.0"], timeout=60)
    assert r.code == 1, r.err
    assert "has 1000 layers, more than the 16 cap (EBPM_MAX_SIGNATURE_LAYERS)" in r.err
    assert len(hostile.requests("GET", r"/v2/r/blobs/.*")) <= 2  # the package's own blobs
    assert len(r.err) < 2000


def test_a_junk_layer_in_a_signature_is_never_fetched(hostile: Hostile) -> None:
    junk = Descriptor("application/octet-stream", zeros_digest(MB), 3 << 30)
    hostile.on("GET", rf"/v2/r/blobs/{junk.digest}", zeros(3 << 30))
    _sig_manifest(hostile, [junk])
    r = run_child(["pull", U, f"{hostile.host}/r:1.0.0"], timeout=60)
    assert r.code == 0, r.err
    assert not hostile.requests("GET", rf"/v2/r/blobs/{junk.digest}")
    assert r.peak_rss < 100 * MB


def test_the_next_pull_removes_a_killed_pulls_staging(hostile: Hostile, tmp_path: Path) -> None:
    art = tiny_artifact("2.0.0", body=b"\x7fELF" + bytes(4 * MB))
    hostile.add(art, "r", "2.0.0")
    layer = art.layers[0].descriptor
    hostile.on("GET", rf"/v2/r/blobs/{layer.digest}", lambda h, m: stream(
        h, 200, (art.layers[0].data[i:i + 65536] for i in range(0, layer.size, 65536)),
        length=layer.size, pause=0.5))
    home = tmp_path / "home"
    env = dict(os.environ, EBPM_HOME=str(home), PYTHONPATH=str(Path(__file__).parents[2]))
    proc = subprocess.Popen([*EBPM, "pull", U, f"{hostile.host}/r:2.0.0"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    staged: list[Path] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not staged:
        staged = [p for p in (home / "ebpm").glob("staging-*/*") if p.stat().st_size > 0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert staged, "the pull never started writing its blob"
    leftover = staged[0].parent
    assert leftover.exists()
    r = run_child(["pull", U, f"{hostile.host}/r:1.0.0"], env={"EBPM_HOME": str(home)})
    assert r.code == 0, r.err
    assert not leftover.exists()
