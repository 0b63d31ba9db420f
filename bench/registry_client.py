"""The registry client's cost over bare requests on the same loopback registry: a verified,
size-checked blob download and a manifest GET, against a plain Session.get of the same URL."""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable

from bench.common import ROOT

ROUNDS = 30
BLOB_SIZE = 4 * 1024 * 1024


def _median(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    import requests

    from ebpm.oci.model import MANIFEST_ACCEPT, MANIFEST_V1, canonical_json, sha256_digest
    from ebpm.oci.remote import Registry
    from tests.registryd import start_registry

    reg = start_registry()
    try:
        client = Registry(reg.host)
        blob = os.urandom(BLOB_SIZE)
        digest = sha256_digest(blob)
        client.push_blob("bench/client", digest, blob)
        config = b"{}"
        client.push_blob("bench/client", sha256_digest(config), config)
        manifest = canonical_json({
            "schemaVersion": 2, "mediaType": MANIFEST_V1,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/octet-stream", "digest": digest,
                        "size": len(blob)}],
        })
        client.put_manifest("bench/client", "1.0.0", manifest, MANIFEST_V1)
        raw = requests.Session()
        blob_url = f"{reg.url}/v2/bench/client/blobs/{digest}"
        manifest_url = f"{reg.url}/v2/bench/client/manifests/1.0.0"

        def ours_blob() -> None:
            client.get_blob("bench/client", digest, size=len(blob))

        def raw_blob() -> None:
            raw.get(blob_url, timeout=10).content  # noqa: B018

        def ours_manifest() -> None:
            client.get_manifest("bench/client", "1.0.0")

        def raw_manifest() -> None:
            raw.get(manifest_url, headers={"Accept": MANIFEST_ACCEPT}, timeout=10).content  # noqa: B018

        lines = []
        for label, ours, peer in (
            (f"blob GET {BLOB_SIZE >> 20} MiB, verified", ours_blob, raw_blob),
            ("manifest GET, verified", ours_manifest, raw_manifest),
        ):
            ours(), peer()  # warm connections
            a, b = [], []
            for _ in range(3):  # interleave to share drift
                a.append(_median(ours, ROUNDS // 3))
                b.append(_median(peer, ROUNDS // 3))
            mo, mp = statistics.median(a), statistics.median(b)
            lines.append(f"{label}: ebpm client {mo * 1000:.2f} ms, bare requests "
                         f"{mp * 1000:.2f} ms, ratio {mo / mp:.2f}x")
        client.close()
        raw.close()
        return lines
    finally:
        reg.stop()
        shutil.rmtree(reg.root, ignore_errors=True)
