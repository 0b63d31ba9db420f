"""The hub on a registry of 1,000 synthetic packages (one version each, with README and
programs): the index cold and incremental, the site build cold and incremental, the explore
page's weight, and search latency; against listing the same registry by hand (the _catalog
and every repository's tags with `skopeo list-tags`, and the same metadata with bare requests).

Set HUB_BENCH_PACKAGES to use another count (default 1000).
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.common import EBPM, ROOT

PACKAGES = int(os.environ.get("HUB_BENCH_PACKAGES", "1000"))
KINDS = (
    ("tracepoint", "tracepoint/sched/sched_process_exec", "sched/sched_process_exec"),
    ("tracepoint", "tracepoint/syscalls/sys_enter_openat", "syscalls/sys_enter_openat"),
    ("xdp", "xdp", ""),
    ("raw_tracepoint", "raw_tp/sched_switch", "sched_switch"),
    ("uprobe", "uprobe//usr/lib/libc.so.6:malloc", "/usr/lib/libc.so.6:malloc"),
    ("tc", "tc", ""),
)
WORDS = ("trace", "count", "latency", "tcp", "udp", "files", "exec", "signals", "memory", "disk",
         "scheduler", "packets", "drops", "histogram", "syscalls", "processes")


T = TypeVar("T")


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _median(fn: Callable[[], object], rounds: int) -> float:
    return statistics.median(_timed(fn)[0] for _ in range(rounds))


def _publish_all(host: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.hub.helpers import package_config, publish

    def one(i: int) -> None:
        kind, section, attach = KINDS[i % len(KINDS)]
        words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(4))
        name = f"tool{i:04d}"
        readme = (f"# {name}\n\n{words.capitalize()} with eBPF.\n\n"
                  + "Usage notes and flags. " * 40 + "\n\n```sh\nebpm run " + name + "\n```\n")
        publish(host, f"bench/{name}", package_config(
            name, description=f"{words.capitalize()} ({kind})",
            programs=((f"prog{i}", section, kind, attach),)), readme=readme)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(PACKAGES)))


def _freshness(work: Path) -> str:
    """Push -> page: a registry notifying `ebpm hub serve`, against refreshing and rebuilding
    by hand (`ebpm hub refresh && ebpm hub build`) after each push."""
    import requests

    from tests.hub.conftest import hub_serve
    from tests.hub.helpers import package_config, publish
    from tests.registryd import free_port, start_registry

    port = free_port()
    env = dict(os.environ, EBPM_HOME=str(work / "fresh-home"), EBPM_HUB_SECRET="bench")
    reg = start_registry(root=work / "fresh-registry", extra={"notifications": {"endpoints": [{
        "name": "hub", "url": f"http://127.0.0.1:{port}/-/events",
        "headers": {"Authorization": ["Bearer bench"]}, "timeout": "2s", "threshold": 5,
        "backoff": "1s",
        "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]}}]}})
    try:
        for i in range(20):
            publish(reg.host, f"fresh/tool{i}", package_config(f"tool{i}"))
        subprocess.run([EBPM, "hub", "refresh", reg.host], env=env, check=True,
                       capture_output=True)
        notified, by_hand = [], []
        with hub_serve("--port", str(port), "--no-refresh", env=env) as served:
            page = f"{served.url}/p/{reg.host.replace(':', '_')}/fresh/tool3/index.html"
            for n in range(1, 6):
                publish(reg.host, "fresh/tool3", package_config("tool3", f"1.{n}.0"))
                start = time.perf_counter()
                deadline = start + 10
                while f"fresh/tool3:1.{n}.0" not in requests.get(page, timeout=5).text:
                    if time.perf_counter() > deadline:
                        raise RuntimeError("the pushed version did not appear within 10 s")
                    time.sleep(0.01)
                notified.append(time.perf_counter() - start)
        site = work / "fresh-site"
        for n in range(6, 11):
            publish(reg.host, "fresh/tool3", package_config("tool3", f"1.{n}.0"))
            start = time.perf_counter()
            subprocess.run([EBPM, "hub", "refresh"], env=env, check=True, capture_output=True)
            subprocess.run([EBPM, "hub", "build", "-o", str(site)], env=env, check=True,
                           capture_output=True)
            by_hand.append(time.perf_counter() - start)
    finally:
        reg.stop()
    mn, mh = statistics.median(notified), statistics.median(by_hand)
    return (f"push -> page shown (20 packages): notified hub serve {mn * 1000:.0f} ms, "
            f"refresh + build by hand {mh * 1000:.0f} ms, ratio {mn / mh:.2f}x (medians of 5)")


def _by_hand_skopeo(host: str) -> int:
    import requests

    repositories: list[str] = []
    url: str | None = f"http://{host}/v2/_catalog"
    while url:
        resp = requests.get(url, timeout=10)
        repositories += resp.json()["repositories"]
        url = resp.links.get("next", {}).get("url")
        url = f"http://{host}{url}" if url else None
    for repo in repositories:
        subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{host}/{repo}"],
                       check=True, capture_output=True)
    return len(repositories)


def _by_hand_requests(host: str) -> int:
    """The same metadata the index holds (tags, manifest, config, README), with bare requests:
    no verification, no signature check, nothing stored."""
    import requests

    from ebpm.oci.model import MANIFEST_ACCEPT, README_TYPE

    session = requests.Session()
    base = f"http://{host}"
    repositories: list[str] = []
    url: str | None = f"{base}/v2/_catalog"
    while url:
        resp = session.get(url, timeout=10)
        repositories += resp.json()["repositories"]
        url = resp.links.get("next", {}).get("url")
        url = base + url if url else None
    for repo in repositories:
        for tag in session.get(f"{base}/v2/{repo}/tags/list", timeout=10).json()["tags"]:
            manifest = session.get(f"{base}/v2/{repo}/manifests/{tag}", timeout=10,
                                   headers={"Accept": MANIFEST_ACCEPT}).json()
            session.get(f"{base}/v2/{repo}/blobs/{manifest['config']['digest']}", timeout=10)
            for layer in manifest["layers"]:
                if layer["mediaType"] == README_TYPE:
                    session.get(f"{base}/v2/{repo}/blobs/{layer['digest']}", timeout=10)
    return len(repositories)


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    if shutil.which("docker-registry") is None:
        return ["hub: skipped (docker-registry is not installed)"]
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-hub-"))
    saved = {k: os.environ.get(k) for k in ("EBPM_HOME", "EBPM_CONFIG", "EBPM_SYSTEM_CONFIG")}
    os.environ.update(EBPM_HOME=str(work / "home"), EBPM_CONFIG=str(work / "config"),
                      EBPM_SYSTEM_CONFIG=str(work / "system"))
    reg = start_registry(root=work / "registry")
    lines: list[str] = []
    try:
        from ebpm.hub.crawl import update
        from ebpm.hub.search import load_documents, search
        from ebpm.hub.site import build_site

        publish_s, _ = _timed(lambda: _publish_all(reg.host))
        lines.append(f"setup: published {PACKAGES} packages in {publish_s:.1f} s")

        cold_s, (index, result) = _timed(lambda: update([reg.host]))
        assert len(index.repositories) == PACKAGES and result.fetched == PACKAGES
        by_hand_s, n = _timed(lambda: _by_hand_requests(reg.host))
        assert n == PACKAGES
        lines.append(f"index cold, {PACKAGES} packages (fetch, verify, check signatures, "
                     f"store): ebpm {cold_s:.1f} s, bare requests for the same metadata "
                     f"{by_hand_s:.1f} s, ratio {cold_s / by_hand_s:.2f}x")
        skopeo_s: float | None = None
        if shutil.which("skopeo"):
            skopeo_s, n = _timed(lambda: _by_hand_skopeo(reg.host))
            assert skopeo_s is not None
            lines.append(f"index cold vs listing by hand (_catalog + skopeo list-tags per "
                         f"repository, tags only): ebpm {cold_s:.1f} s, skopeo {skopeo_s:.1f} s, "
                         f"ratio {cold_s / skopeo_s:.2f}x")

        warm_s, (_, again) = _timed(lambda: update())
        assert again.fetched == 0
        lines.append(f"index incremental, nothing new (catalog, tags, HEAD per tag): "
                     f"ebpm {warm_s:.2f} s" + (f", skopeo list-tags by hand {skopeo_s:.1f} s, "
                                               f"ratio {warm_s / skopeo_s:.2f}x"
                                               if skopeo_s else ""))
        from tests.hub.helpers import package_config, publish

        for i in range(10):
            publish(reg.host, f"bench/tool{i:04d}", package_config(f"tool{i:04d}", "1.1.0"))
        inc_s, (index, inc) = _timed(lambda: update())
        assert inc.fetched == 10
        lines.append(f"index incremental, 10 new versions: ebpm {inc_s:.2f} s "
                     f"(ratio to cold {inc_s / cold_s:.3f}x)")

        site = work / "site"
        build_s, built = _timed(lambda: build_site(index, site))
        one_s, one = _timed(lambda: build_site(index, site, only={f"{reg.host}/bench/tool0500"}))
        lines.append(f"site build cold, {len(built.written)} files, "
                     f"{built.bytes / 1e6:.1f} MB: {build_s:.2f} s; "
                     f"incremental (one repository, {len(one.written)} pages): "
                     f"{one_s * 1000:.0f} ms, ratio {one_s / build_s:.3f}x")

        explore = (site / "index.html").read_bytes()
        assets = sum((site / "assets" / a).stat().st_size for a in ("hub.css", "hub.js"))
        lines.append(f"explore page weight, {PACKAGES} cards: HTML {len(explore) / 1024:.0f} KiB "
                     f"({len(gzip.compress(explore)) / 1024:.0f} KiB gzipped) + CSS/JS "
                     f"{assets / 1024:.1f} KiB; no other request")

        load_s = _median(load_documents, 5)
        loaded = load_documents()
        search_s = _median(lambda: search(loaded, "tcp"), 20)
        hook_s = _median(lambda: search(loaded, "tracepoint:sched"), 20)
        lines.append(f"search in-process, {PACKAGES} packages: load the search file "
                     f"{load_s * 1000:.0f} ms, "
                     f"'tcp' {search_s * 1000:.1f} ms, 'tracepoint:sched' {hook_s * 1000:.1f} ms")
        env = dict(os.environ)
        cli = []
        version = []
        for _ in range(5):
            version.append(_timed(lambda: subprocess.run([EBPM, "--version"], env=env,
                                                         capture_output=True, check=True))[0])
            cli.append(_timed(lambda: subprocess.run([EBPM, "search", "tcp", "--json"], env=env,
                                                     capture_output=True, check=True))[0])
        mc, mv = statistics.median(cli), statistics.median(version)
        lines.append(f"`ebpm search tcp` whole process: {mc * 1000:.0f} ms, `ebpm --version` "
                     f"{mv * 1000:.0f} ms, ratio {mc / mv:.2f}x (medians of 5)")
        lines.append(_freshness(work))
    finally:
        reg.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work, ignore_errors=True)
    return lines
