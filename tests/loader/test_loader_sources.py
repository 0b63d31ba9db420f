"""Where packages come from (URL, bare object) and how several event streams are consumed."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ebpm.errors import NotFoundError, OfflineError, TooLargeError
from ebpm.oci.transport import download
from ebpm.run import load_path, resolve_target, run_object
from tests.loader.conftest import require_bpf

pytestmark = pytest.mark.kernel


class _Handler(http.server.SimpleHTTPRequestHandler):
    agents: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook's name
        self.agents.append(self.headers.get("User-Agent", ""))
        super().do_GET()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    _Handler.agents = []
    handler = functools.partial(_Handler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    server.shutdown()
    server.server_close()
    thread.join()


def test_url_to_a_bpf_object(built, http_dir, monkeypatch) -> None:
    base, root = http_dir
    obj = (built("opensnoop") / ".ebpm" / "opensnoop.bpf.o").read_bytes()
    (root / "opensnoop.bpf.o").write_bytes(obj)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    pkg = resolve_target(f"{base}/opensnoop.bpf.o", allow_unsigned=True)
    assert pkg.object == obj and pkg.config.name == "opensnoop" and pkg.btf is None
    assert _Handler.agents[-1].startswith("ebpm/")  # through ebpm.oci.transport's session
    with pytest.raises(TooLargeError):
        download(f"{base}/opensnoop.bpf.o", max_bytes=len(obj) - 1)
    with pytest.raises(NotFoundError):
        resolve_target(f"{base}/missing.bpf.o", allow_unsigned=True)
    monkeypatch.setenv("EBPM_OFFLINE", "1")
    with pytest.raises(OfflineError):
        resolve_target(f"{base}/opensnoop.bpf.o", allow_unsigned=True)


def test_bare_object_gets_its_metadata_at_load_time(built, trigger, collector) -> None:
    """A .bpf.o with its sidecar beside it and no config.json: flags and events still work."""
    require_bpf()
    pkg = load_path(built("kinds") / ".ebpm" / "kinds.bpf.o")
    assert pkg.config.programs == () and pkg.btf is not None
    with trigger(os.getppid):
        run_object(pkg.object, pkg.config, btf=pkg.btf, args=["--pid", str(os.getpid())],
                   max_events=1, duration=10, sink=collector)
    assert collector.events[0]["pid"] == os.getpid()
    assert collector.events[0]["color"] == "BLUE"


def test_ring_and_perf_buffers_together(built, trigger, collector) -> None:
    require_bpf()
    pkg = load_path(built("twostreams"))
    with trigger(os.getppid):
        summary = run_object(pkg.object, pkg.config, btf=pkg.btf,
                             args=["--pid", str(os.getpid())], max_events=6, duration=10,
                             sink=collector)
    assert summary.events >= 6
    sources = {e["source"] for e in collector.events}
    assert sources == {1, 2}
    assert all(e["pid"] == os.getpid() for e in collector.events)
