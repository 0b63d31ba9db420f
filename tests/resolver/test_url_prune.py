"""A url dependency's file is named in the store (as pulled packages and git builds are):
`ebpm cache prune` keeps it, so an offline install still works after a prune, while blobs
nothing names still go. `ebpm cache ls` lists it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.cli import ebpm
from tests.oci.conftest import TinyServer, reply


def test_prune_keeps_url_files_an_offline_install_needs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        ebpm_env: Path) -> None:
    from ebpm.deps.fetch import url_store_name
    from ebpm.oci.layout import Store

    body = b"\x7fELF a url dependency kept across prune"
    sha = hashlib.sha256(body).hexdigest()

    server = TinyServer(lambda h, seen: reply(h, 200, body)).start()
    url = f"{server.url}/tool.bpf.o"
    app = tmp_path / "app"
    app.mkdir()
    (app / "ebpm.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
        f'tool = {{ url = "{url}", sha256 = "{sha}" }}\n'
    )
    monkeypatch.chdir(app)
    try:
        r = ebpm(capsys, "install")
        assert r.code == 0, r.err
    finally:  # the server is gone from here on
        server.stop()

    store = Store()
    orphan = store.write_blob(b"a blob nothing names")
    named = store.resolve(url_store_name(url, sha))
    assert named is not None and named.annotations["dev.ebpm.url"] == url

    r = ebpm(capsys, "cache", "ls", "--json")
    assert r.code == 0, r.err
    listing = json.loads(r.out)
    assert listing["items"] == [{"kind": "url", "name": url_store_name(url, sha), "source": url,
                                 "digest": f"sha256:{sha}", "size": len(body)}]
    assert listing["unreferenced"] == {"blobs": 1, "size": len(b"a blob nothing names")}
    r = ebpm(capsys, "cache", "ls")
    assert r.code == 0 and url in r.out and "unreferenced: 1 blobs" in r.err
    assert ebpm(capsys, "list").err.strip() == "no packages in the store"  # not a package

    r = ebpm(capsys, "cache", "prune", "--now")  # (the orphan is new: without --now it stays)
    assert r.code == 0 and r.out.startswith("pruned 1 blobs"), r.out
    assert not store.has_blob(orphan)  # what nothing names goes
    assert store.has_blob(f"sha256:{sha}")  # the url file stays

    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0, r.err
    assert "0 fetched, 1 from the store" in r.out

    # unnamed (as an older store left it): prune drops it, and offline install says so
    assert store.untag(url_store_name(url, sha))
    assert ebpm(capsys, "cache", "prune", "--now").code == 0
    assert not store.has_blob(f"sha256:{sha}")
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code != 0 and "not in the store (offline)" in r.err
