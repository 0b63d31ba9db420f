"""The OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`), paginated by `Link`.

No registry that implements the referrers API installs here (Debian 12 has distribution 2.8,
which has none; zot and distribution 3 are on neither Debian nor PyPI), so the real-registry
tests cover only the fallback tag. These tests serve the API from a PROTOCOL FIXTURE: the
loopback registry of tests/hostile.py (real pushes, real manifests) plus `referrers_api()`, an
answer built exactly as the distribution spec 1.1 describes it (an image index of the
descriptors of the manifests whose `subject` is the digest, `artifactType` from the manifest or
its config, annotations copied; pages linked by `Link: <...>; rel="next"`). ebpm signs and
verifies against it through its ordinary client code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import pytest

from ebpm.oci.model import INDEX_V1, MANIFEST_V1, Descriptor, Manifest, sha256_digest
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.cli import ebpm
from tests.hardening.conftest import tiny_artifact
from tests.hostile import Handler, Hostile, send

_PATH = r"/v2/(?P<repo>.+)/referrers/(?P<digest>sha256:[0-9a-f]{64})(?:\?(?P<query>.*))?"


def referrers_api(server: Hostile, *, page_size: int = 1, loop: bool = False) -> Handler:
    """PROTOCOL FIXTURE: the spec's referrers API over the manifests `server` holds, in the
    order they were pushed, `page_size` descriptors a page (`?n=` is honoured as well, and the
    next page named by `last=`). With `loop`, every page links to itself."""

    def handler(h: BaseHTTPRequestHandler, m: re.Match[str]) -> None:
        query = parse_qs(m["query"] or "")
        size = int(query.get("n", [page_size])[0])
        entries: list[dict[str, object]] = []
        for (repo, ref), (data, media_type) in server.manifests.items():
            if repo != m["repo"] or not ref.startswith("sha256:"):
                continue
            doc = json.loads(data)
            if (doc.get("subject") or {}).get("digest") != m["digest"]:
                continue
            entry: dict[str, object] = {
                "mediaType": media_type, "digest": ref, "size": len(data),
                "artifactType": doc.get("artifactType") or doc["config"]["mediaType"]}
            if doc.get("annotations"):
                entry["annotations"] = doc["annotations"]
            entries.append(entry)
        start = 0
        if "last" in query:
            start = next(n for n, e in enumerate(entries) if e["digest"] == query["last"][0]) + 1
        page = entries[start:start + size]
        headers = {"Content-Type": INDEX_V1}
        if loop:
            headers["Link"] = f'<{urlsplit(h.path).path}>; rel="next"'
        elif start + size < len(entries):
            headers["Link"] = (f'</v2/{m["repo"]}/referrers/{m["digest"]}?n={size}'
                               f'&last={page[-1]["digest"]}>; rel="next"')
        body = {"schemaVersion": 2, "mediaType": INDEX_V1, "manifests": page}
        send(h, 200, json.dumps(body).encode(), headers)

    return handler


@pytest.fixture
def server() -> Iterator[Hostile]:
    """The loopback registry with `r:1.0.0` (a package) and the referrers API fixture."""
    s = Hostile().start()
    s.add(tiny_artifact(), "r", "1.0.0")
    s.on("GET", _PATH, referrers_api(s))
    yield s
    s.stop()


def _sbom(server: Hostile, subject: str, n: int = 0) -> str:
    """An SBOM referrer (as `oras attach` makes one): not a signature, skipped by ebpm."""
    blob = b'{"spdxVersion": "SPDX-2.3", "n": %d}' % n
    server.blobs[sha256_digest(blob)] = blob
    empty = b"{}"
    server.blobs[sha256_digest(empty)] = empty
    data = server.manifests[("r", "1.0.0")][0]
    manifest = Manifest(
        config=Descriptor("application/vnd.oci.empty.v1+json", sha256_digest(empty), 2),
        layers=(Descriptor("application/spdx+json", sha256_digest(blob), len(blob)),),
        artifact_type="application/spdx+json",
        subject=Descriptor(MANIFEST_V1, subject, len(data)))
    return server.put_manifest("r", sha256_digest(manifest.to_bytes()), manifest.to_bytes())


def _sign(capsys: pytest.CaptureFixture[str], server: Hostile, key: str) -> None:
    r = ebpm(capsys, "sign", "--referrers", "--key", key, f"{server.host}/r:1.0.0")
    assert r.code == 0, r.err


def test_signatures_on_the_last_page_count(capsys: pytest.CaptureFixture[str],
                                           server: Hostile) -> None:
    """Three referrers, one a page: an untrusted signature, an SBOM, then the trusted one."""
    digest = tiny_artifact().digest
    keys.generate("evil")
    good = keys.generate("good")
    _sign(capsys, server, "evil")
    _sbom(server, digest)
    _sign(capsys, server, "good")
    # the registry has the API: ebpm's signing never wrote the fallback tag
    assert not server.requests("PUT", rf"/v2/r/manifests/sha256-{digest[7:]}")
    trust.add_trust(f"{server.host}/**", good.public_path)
    r = ebpm(capsys, "pull", f"{server.host}/r:1.0.0")
    assert r.code == 0, r.err
    pages = server.requests("GET", rf"/v2/r/referrers/{digest}.*")
    assert len(pages) >= 3 and any("last=" in p.path for p in pages)
    assert not server.requests("GET", rf"/v2/r/manifests/sha256-{digest[7:]}")
    r = ebpm(capsys, "--offline", "verify", "--json", f"{server.host}/r:1.0.0")
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["status"] == "verified"
    assert [s["key_id"] for s in result["signers"]] == [good.key_id]
    assert len(result["rejected"]) == 1, result["rejected"]  # evil's, on the first page


def test_referrers_are_capped(capsys: pytest.CaptureFixture[str], server: Hostile,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    digest = tiny_artifact().digest
    good = keys.generate("good")
    _sign(capsys, server, "good")
    _sbom(server, digest, 1)
    _sbom(server, digest, 2)
    trust.add_trust(f"{server.host}/**", good.public_path)
    monkeypatch.setenv("EBPM_MAX_REFERRERS", "2")
    r = ebpm(capsys, "pull", f"{server.host}/r:1.0.0")
    assert r.code == 1
    assert "more than 2 referrers (EBPM_MAX_REFERRERS)" in r.err, r.err
    # pages are capped too (MAX_PAGES; lowered here rather than serving a thousand pages)
    import ebpm.oci.remote as remote

    monkeypatch.delenv("EBPM_MAX_REFERRERS")
    monkeypatch.setattr(remote, "MAX_PAGES", 1)
    r = ebpm(capsys, "pull", f"{server.host}/r:1.0.0")
    assert r.code == 1
    assert "more than 1 pages" in r.err, r.err
    monkeypatch.setattr(remote, "MAX_PAGES", 1000)
    r = ebpm(capsys, "pull", f"{server.host}/r:1.0.0")
    assert r.code == 0, r.err


def test_a_page_that_links_to_itself_ends(capsys: pytest.CaptureFixture[str]) -> None:
    s = Hostile().start()
    try:
        s.add(tiny_artifact(), "r", "1.0.0")
        s.on("GET", _PATH, referrers_api(s, page_size=10, loop=True))
        good = keys.generate("good")
        _sign(capsys, s, "good")
        trust.add_trust(f"{s.host}/**", good.public_path)
        r = ebpm(capsys, "pull", f"{s.host}/r:1.0.0")
        assert r.code == 0, r.err
        assert len(s.requests("GET", r"/v2/r/referrers/.*")) <= 3  # sign, pull: no circling
    finally:
        s.stop()
