"""`ebpm save --locked -o deps.tar`: exactly what ebpm.lock pins, with signatures, for an air gap:
loaded into an empty store, `ebpm install --frozen --offline` then works with no registry."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.cli import ebpm
from tests.registryd import Registryd
from tests.resolver.test_resolver_install import project, publish

pytestmark = pytest.mark.registry


def test_save_locked_then_load_and_install_offline(
        registry: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ebpm.oci.reference import parse
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    h = registry.host
    monkeypatch.setenv("EBPM_REGISTRY", h)
    digests = publish(registry, {"sv-a": {"1.0.0": {"sv-b": "^1"}},
                                 "sv-b": {"1.0.0": {}, "1.1.0": {}, "2.0.0": {}}})
    key = keys.generate("ci")
    trust.add_trust(f"{h}/sv-*", key.public_path)
    for name, version in (("sv-a", "1.0.0"), ("sv-b", "1.0.0"), ("sv-b", "1.1.0"),
                          ("sv-b", "2.0.0")):
        sign(parse(f"{h}/{name}:{version}"), digests[f"{name}@{version}"], str(key.private_path))
    app = project(tmp_path / "app", {"sv-a": "^1"})
    monkeypatch.chdir(app)
    assert ebpm(capsys, "install").code == 0

    r = ebpm(capsys, "save", "--locked", "-o", str(tmp_path / "deps.tar"))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"saved {h}/sv-a:1.0.0", f"saved {h}/sv-b:1.1.0",
                                  f"wrote {tmp_path / 'deps.tar'}"]
    with tarfile.open(tmp_path / "deps.tar") as tar:
        index = tar.extractfile("index.json").read().decode()  # type: ignore[union-attr]
    assert index.count(".sig") == 2  # each package with its signature, nothing else
    assert "2.0.0" not in index and digests["sv-b@2.0.0"] not in index

    # the air-gapped side: an empty store, and --offline (no network call at all)
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "airgap"))
    assert ebpm(capsys, "load", str(tmp_path / "deps.tar")).code == 0
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0, r.err
    assert "installed 2 packages: 0 fetched, 2 from the store" in r.out

    r = ebpm(capsys, "save", "sv-a", "--locked", "-o", str(tmp_path / "x.tar"))
    assert r.code == 2 and "not both" in r.err


def test_save_locked_carries_git_builds_url_files_for_an_air_gap(
        registry: Registryd, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A graph with a git package (served by `git daemon`, itself depending on a signed registry
    package), a git package over `git http-backend`, a url file and a path package: saved on one
    EBPM_HOME, loaded into an empty one, installed --frozen --offline with every server
    stopped. Git builds and url files load unnamed; only the lock's digests name them. The
    commits' objects come along, so the other side can re-lock and rebuild offline."""
    import hashlib
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ebpm.deps.fetch import url_store_name
    from ebpm.deps.git import store_name
    from ebpm.oci.layout import Store
    from ebpm.oci.reference import parse
    from ebpm.resolver.lockfile import Lockfile
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign
    from tests.gitserve import GitDaemon, GitHttp, Work
    from tests.resolver.test_git_source import _package_files

    h = registry.host
    monkeypatch.setenv("EBPM_REGISTRY", h)
    digests = publish(registry, {"ag-lib": {"1.0.0": {}}})
    key = keys.generate("ci")
    trust.add_trust(f"{h}/ag-*", key.public_path)
    sign(parse(f"{h}/ag-lib:1.0.0"), digests["ag-lib@1.0.0"], str(key.private_path))

    served = tmp_path / "served"
    served.mkdir()
    work = Work(tmp_path / "work", served / "agtool.git")
    files = _package_files("agtool", "1.0.0", tmp_path)
    toml = files["pkg/ebpm.toml"]
    assert isinstance(toml, bytes)
    files["pkg/ebpm.toml"] = toml.replace(b"[dependencies]\n",
                                          b'[dependencies]\nag-lib = "^1"\n')
    commit = work.commit(files, tag="v1.0.0")
    work2 = Work(tmp_path / "work2", served / "agnet.git")
    commit2 = work2.commit(_package_files("agnet", "2.0.0", tmp_path))
    daemon = GitDaemon(served)
    http = GitHttp(served)
    body = b"\x7fELF an air-gapped url file"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    file_url = f"http://127.0.0.1:{httpd.server_address[1]}/x.bpf.o"
    url, url2 = daemon.url("agtool.git"), http.url("agnet.git")
    try:
        app = tmp_path / "app"
        (app / "lib").mkdir(parents=True)
        (app / "lib" / "ebpm.toml").write_text(
            '[package]\nname = "lib"\nversion = "0.3.0"\n\n[dependencies]\n')
        (app / "ebpm.toml").write_text(
            '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
            f'tool = {{ git = "{url}", tag = "v1.0.0", subdir = "pkg" }}\n'
            f'net = {{ git = "{url2}", branch = "main", subdir = "pkg" }}\n'
            f'blob = {{ url = "{file_url}", sha256 = "{hashlib.sha256(body).hexdigest()}" }}\n'
            'lib = { path = "lib" }\n')
        monkeypatch.chdir(app)
        r = ebpm(capsys, "install")
        assert r.code == 0, r.err
        lockfile = Lockfile.load(app / "ebpm.lock")
        tool = next(e for e in lockfile.packages if e.kind == "git" and e.url == url)
        net = next(e for e in lockfile.packages if e.kind == "git" and e.url == url2)
        assert (tool.commit, net.commit) == (commit, commit2)

        r = ebpm(capsys, "save", "--locked", "-o", str(tmp_path / "deps.tar"))
        assert r.code == 0, r.err
        assert r.out.splitlines() == [
            f"saved {h}/ag-lib:1.0.0",
            f"saved git {url}#pkg@{commit[:12]}",
            f"saved git objects {url}#pkg@{commit[:12]}",
            f"saved git {url2}#pkg@{commit2[:12]}",
            f"saved git objects {url2}#pkg@{commit2[:12]}",
            f"saved url {file_url}",
            f"wrote {tmp_path / 'deps.tar'}",
        ]
        assert "not saved path lib: a path package travels with the project's files" in r.err
        assert ebpm(capsys, "save", "--locked", "-o", str(tmp_path / "again.tar")).code == 0
        assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "deps.tar").read_bytes()
    finally:
        daemon.stop()
        http.stop()
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    # the air-gapped side: an empty EBPM_HOME, no registry used, every server stopped
    airgap = tmp_path / "airgap"
    monkeypatch.setenv("EBPM_HOME", str(airgap))
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code != 0 and "offline" in r.err  # nothing there yet
    r = ebpm(capsys, "load", str(tmp_path / "deps.tar"))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith(f"loaded {h}/ag-lib:1.0.0  {digests['ag-lib@1.0.0']}  verified")
    assert f"loaded git {url}#pkg@{commit[:12]}  {tool.manifest_digest}  pinned" in r.out
    assert f"loaded url {file_url}  sha256:" in r.out
    assert f"loaded git objects {url}#pkg@{commit[:12]}  sha256:" in r.out
    assert "into the store's copy of the repository" in r.out
    store = Store(airgap)
    assert store.resolve(store_name(url, "pkg", commit)) is None  # loaded unnamed

    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0, r.err
    assert "installed 5 packages: 0 fetched, 5 from the store" in r.out
    found = store.resolve(store_name(url, "pkg", commit))  # named by the lock's digest
    assert found is not None and found.digest == tool.manifest_digest
    # the install named the url file too: a prune keeps everything the lock needs
    assert store.resolve(url_store_name(file_url, hashlib.sha256(body).hexdigest()))
    r = ebpm(capsys, "cache", "ls", "--json")
    kinds = {(i["kind"], i["source"]) for i in json.loads(r.out)["items"]}
    assert {("package", "ag-lib@1.0.0"), ("git", "agtool@1.0.0"), ("git", "agnet@2.0.0"),
            ("url", file_url)} <= kinds, kinds
    assert ebpm(capsys, "cache", "prune").code == 0
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0 and "0 fetched, 5 from the store" in r.out, r.err
    r = ebpm(capsys, "--offline", "tree")
    assert r.code == 0 and "ag-lib 1.0.0" in r.out
    # the commits' history came along: lock works offline there, and a build the store lost
    # is made again from those objects, reproducing the pinned digest
    r = ebpm(capsys, "--offline", "lock")
    assert r.code == 0 and "locked (unchanged)" in r.out, r.err
    assert store.untag(store_name(url, "pkg", commit))
    Path(store.blob_path(tool.manifest_digest)).unlink()
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 0 and "installed 5 packages: 1 fetched, 4 from the store" in r.out, r.err
    assert store.resolve(store_name(url, "pkg", commit)).digest == tool.manifest_digest  # type: ignore[union-attr]
    # outdated checks what it can and names what it cannot (a branch head needs the server)
    r = ebpm(capsys, "--offline", "outdated")
    assert r.code == 0 and r.out == "" and r.err.endswith("all dependencies are up to date\n")
    assert f"offline: {tool.key}: not checked (the store has no copy of its ref)" \
        in r.err.splitlines()

    # a lock naming another build is not served by the archive's: rebuilt from the objects,
    # it stops with both digests
    other = "sha256:" + "1" * 64
    text = (app / "ebpm.lock").read_text().replace(net.manifest_digest, other)
    (app / "ebpm.lock").write_text(text)
    store.untag(store_name(url2, "pkg", commit2))
    r = ebpm(capsys, "--offline", "install", "--frozen")
    assert r.code == 1 and r.err.startswith(
        f"error: {url2} pkg at {commit2[:12]}: the rebuild gives {net.manifest_digest}, the "
        f"lock pins {other}\n"), r.err
