"""push, pull, tags, inspect, list, rm and offline use against a real registry, through the CLI;
and the bad inputs of the foundation issue, each leaving nothing in the store."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ebpm.oci.model import MANIFEST_V1, sha256_digest
from ebpm.package import PackageConfig
from tests.cli import ebpm
from tests.registryd import Registryd, start_registry

U = "--allow-unsigned"  # signing is covered in tests/signing/


def make_package(root: Path, obj: Path, *, version: str = "1.0.0", readme: str = "# demo\n"
                 ) -> Path:
    """A built package directory as `ebpm build` leaves it (ebpm.toml + .ebpm/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ebpm.toml").write_text(
        f'[package]\nname = "demo"\nversion = "{version}"\ndescription = "a demo"\n'
        'license = "GPL-2.0"\nauthors = ["Ada"]\n')
    (root / "README.md").write_text(readme)
    build = root / ".ebpm"
    build.mkdir(exist_ok=True)
    shutil.copy(obj, build / "demo.bpf.o")
    config = PackageConfig(name="demo", version=version, description="a demo",
                           license="GPL-2.0", authors=("Ada",))
    (build / "config.json").write_bytes(config.to_json())
    return root


def store_entries(home: Path) -> list[str]:
    index = home / "index.json"
    if not index.exists():
        return []
    doc = json.loads(index.read_text())
    return [m["annotations"]["org.opencontainers.image.ref.name"] for m in doc["manifests"]]


def store_blobs(home: Path) -> list[str]:
    blobs = home / "blobs" / "sha256"
    return sorted(p.name for p in blobs.iterdir()) if blobs.exists() else []


def test_push_pull_inspect_list_rm(capsys, registry: Registryd, hello_object: Path,
                                   ebpm_env: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/t/demo"
    pkg = make_package(tmp_path / "demo", hello_object)
    r = ebpm(capsys, "push", str(pkg), ref)
    assert r.code == 0, r.err
    assert f"{ref}:1.0.0  sha256:" in r.out and "pushed" in r.out

    r = ebpm(capsys, "pull", U, "--json", ref)  # no tag: the highest version
    assert r.code == 0, r.err
    pulled = json.loads(r.out)
    assert pulled["reference"].startswith(f"{ref}:1.0.0@sha256:")
    assert (pulled["name"], pulled["version"], pulled["cached"]) == ("demo", "1.0.0", False)
    assert f"{ref}:1.0.0" in store_entries(ebpm_env)

    r = ebpm(capsys, "inspect", "--local", "--json", f"{ref}:1.0.0")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert info["digest"] == pulled["digest"]
    titles = [x["annotations"]["org.opencontainers.image.title"]
              for x in info["manifest"]["layers"]]
    assert titles == ["demo.bpf.o", "README.md"]
    assert info["config"]["description"] == "a demo"

    r = ebpm(capsys, "inspect", f"{ref}:1.0.0")  # from the registry, for people
    assert r.code == 0 and "demo 1.0.0" in r.out and "demo.bpf.o" in r.out

    r = ebpm(capsys, "list", "--json")
    assert [p["reference"] for p in json.loads(r.out)] == [f"{ref}:1.0.0"]

    out = tmp_path / "export"
    r = ebpm(capsys, "pull", U, "-o", str(out), f"{ref}:1.0.0")
    assert r.code == 0, r.err
    assert (out / "demo.bpf.o").read_bytes() == hello_object.read_bytes()

    r = ebpm(capsys, "rm", f"{ref}:1.0.0")
    assert r.code == 0 and "removed" in r.out
    assert store_entries(ebpm_env) == [] and store_blobs(ebpm_env) == []
    assert ebpm(capsys, "rm", f"{ref}:1.0.0").code == 1


def test_push_bare_object_and_tags_sorted(capsys, registry: Registryd, hello_object: Path
                                          ) -> None:
    ref = f"{registry.host}/t/hello"
    for version in ("1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0+build.7"):
        r = ebpm(capsys, "push", str(hello_object), f"{ref}:{version}")
        assert r.code == 0, r.err
    r = ebpm(capsys, "tags", "--json", ref)
    assert json.loads(r.out) == ["0.9.0_build.7", "1.2.0-rc.1", "1.2.0", "1.10.0"]
    r = ebpm(capsys, "pull", U, "--json", ref)
    assert json.loads(r.out)["version"] == "1.10.0"
    r = ebpm(capsys, "inspect", "--json", f"{ref}:1.2.0")
    config = json.loads(r.out)["config"]
    assert (config["name"], config["version"]) == ("hello", "1.2.0")


def test_a_push_to_a_registry_that_is_down_is_not_told_to_go_offline(
        capsys, hello_object: Path) -> None:
    """The unreachable registry's hint offers --offline (work from the store): no help to a
    push, which is refused offline."""
    from tests.registryd import free_port

    r = ebpm(capsys, "push", str(hello_object), f"127.0.0.1:{free_port()}/t/down:1.0.0")
    assert r.code == 1 and "unreachable" in r.err
    assert "a push needs it" in r.err and "--offline" not in r.err


def test_version_tags_are_immutable(capsys, registry: Registryd, hello_object: Path,
                                    tmp_path: Path) -> None:
    ref = f"{registry.host}/t/immutable:1.0.0"
    pkg = make_package(tmp_path / "p", hello_object)
    assert ebpm(capsys, "push", str(pkg), ref).code == 0
    r = ebpm(capsys, "push", str(pkg), ref)
    assert r.code == 0 and "unchanged" in r.out
    os.utime(pkg / ".ebpm" / "config.json")
    (pkg / "README.md").write_text("# changed\n")
    r = ebpm(capsys, "push", str(pkg), ref)
    assert r.code == 1
    assert "already published with different content" in r.err and "--force" in r.err
    r = ebpm(capsys, "push", "--force", str(pkg), ref)
    assert r.code == 0, r.err
    r = ebpm(capsys, "push", str(pkg), f"{registry.host}/t/immutable:2.0.0")
    assert r.code == 2 and "is not the package version 1.0.0" in r.err


def test_unbuilt_package_is_refused(capsys, registry: Registryd, tmp_path: Path) -> None:
    (tmp_path / "ebpm.toml").write_text('[package]\nname = "x"\nversion = "1.0.0"\n')
    r = ebpm(capsys, "push", str(tmp_path), f"{registry.host}/t/x")
    assert r.code == 1 and "not built" in r.err and "ebpm build" in r.err


def test_offline_serves_from_store_with_no_network(capsys, hello_object: Path,
                                                   ebpm_env: Path, monkeypatch) -> None:
    reg = start_registry()
    try:
        ref = f"{reg.host}/t/offline"
        assert ebpm(capsys, "push", str(hello_object), f"{ref}:1.0.0").code == 0
        assert ebpm(capsys, "pull", U, ref).code == 0
    finally:
        reg.stop()
    # the registry is gone: offline still works, from the store alone
    r = ebpm(capsys, "--offline", "pull", U, "--json", ref)
    assert r.code == 0, r.err
    assert json.loads(r.out)["cached"] is True
    monkeypatch.setenv("EBPM_OFFLINE", "1")
    assert ebpm(capsys, "inspect", "--json", f"{ref}:1.0.0").code == 0
    assert ebpm(capsys, "tags", ref).out.split() == ["1.0.0"]
    r = ebpm(capsys, "pull", U, f"{ref}:2.0.0")
    assert r.code == 1 and "not in the store (offline)" in r.err
    # online but down: a clear error at once, nothing stored
    monkeypatch.delenv("EBPM_OFFLINE")
    before = store_blobs(ebpm_env)
    r = ebpm(capsys, "pull", U, f"{ref}:2.0.0")
    assert r.code == 1 and "unreachable" in r.err and "hint:" in r.err
    assert store_blobs(ebpm_env) == before


def test_unknown_repository_or_tag(capsys, registry: Registryd, hello_object: Path,
                                   ebpm_env: Path) -> None:
    r = ebpm(capsys, "pull", U, f"{registry.host}/t/nope:1.0.0")
    assert r.code == 1 and "error:" in r.err
    ebpm(capsys, "push", str(hello_object), f"{registry.host}/t/known:1.0.0")
    r = ebpm(capsys, "pull", U, f"{registry.host}/t/known:9.9.9")
    assert r.code == 1 and "error:" in r.err
    assert store_entries(ebpm_env) == [] and store_blobs(ebpm_env) == []


def test_malformed_reference(capsys) -> None:
    r = ebpm(capsys, "pull", "Bad:Ref:x")
    assert r.code == 2 and r.err.startswith("error: invalid reference") and "hint:" in r.err


def _registry_blob_file(reg: Registryd, digest: str) -> Path:
    hexd = digest.partition(":")[2]
    return (reg.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data")


def test_corrupt_blob_in_registry_stores_nothing(capsys, hello_object: Path, ebpm_env: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    reg = start_registry()
    try:
        ref = f"{reg.host}/t/corrupt:1.0.0"
        with monkeypatch.context() as patched:  # the layer as a blob, as a large object's
            patched.setattr("ebpm.oci.artifact.MAX_EMBEDDED", 0)
            assert ebpm(capsys, "push", str(hello_object), ref).code == 0
        info = json.loads(ebpm(capsys, "inspect", "--json", ref).out)
        layer = info["manifest"]["layers"][0]["digest"]
        blob = _registry_blob_file(reg, layer)
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
        r = ebpm(capsys, "pull", U, ref)
        assert r.code == 1 and "digest" in r.err
        assert store_entries(ebpm_env) == []
        assert sha256_digest(bytes(data)).partition(":")[2] not in store_blobs(ebpm_env)
        assert layer.partition(":")[2] not in store_blobs(ebpm_env)
    finally:
        reg.stop()


def _put_raw_manifest(reg: Registryd, repo: str, tag: str, doc: dict) -> None:
    """PUT a manifest with plain requests (ebpm's own client refuses to write bad ones)."""
    import requests

    data = json.dumps(doc, separators=(",", ":")).encode()
    resp = requests.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=data,
                        headers={"Content-Type": MANIFEST_V1}, timeout=10)
    assert resp.status_code == 201, resp.text


def test_layer_title_traversal_is_refused(capsys, registry: Registryd, hello_object: Path,
                                          ebpm_env: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/t/evil:1.0.0"
    assert ebpm(capsys, "push", str(hello_object), ref).code == 0
    doc = json.loads(ebpm(capsys, "inspect", "--json", ref).out)["manifest"]
    doc["layers"][0]["annotations"]["org.opencontainers.image.title"] = "../../escaped.o"
    _put_raw_manifest(registry, "t/evil", "2.0.0", doc)
    out = tmp_path / "out" / "inner"
    r = ebpm(capsys, "pull", U, "-o", str(out), f"{registry.host}/t/evil:2.0.0")
    assert r.code == 1 and "not a plain file name" in r.err
    assert not (tmp_path / "escaped.o").exists() and not (tmp_path / "out").exists()
    assert store_entries(ebpm_env) == []


def test_oversized_manifest_is_refused(capsys, ebpm_env: Path) -> None:
    """distribution itself refuses manifests over 4 MiB, so a small loopback server plays a
    hostile registry that streams a 5 MiB one."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = b'{"schemaVersion":2,"padding":"' + b"x" * (5 * 1024 * 1024) + b'"}'

    class Hostile(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            if "/manifests/" in self.path:
                self.send_header("Content-Type", MANIFEST_V1)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        r = ebpm(capsys, "pull", U, f"127.0.0.1:{server.server_port}/t/big:1.0.0")
    finally:
        server.shutdown()
        server.server_close()
    assert r.code == 1 and "cap" in r.err
    assert store_entries(ebpm_env) == [] and store_blobs(ebpm_env) == []


def test_skopeo_copies_what_ebpm_pushes_and_ebpm_reads_skopeos_layout(
        capsys, registry: Registryd, hello_object: Path, tmp_path: Path, monkeypatch) -> None:
    ref = f"{registry.host}/t/interop:1.0.0"
    r = ebpm(capsys, "push", "--json", str(hello_object), ref)
    digest = json.loads(r.out)["digest"]
    layout = tmp_path / "skopeo-layout"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
                    f"oci:{layout}:{ref}"], check=True)
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest  # digest unchanged by the copy
    # ebpm reads the layout skopeo wrote, offline
    monkeypatch.setenv("EBPM_HOME", str(layout))
    r = ebpm(capsys, "--offline", "pull", U, "--json", ref)
    assert r.code == 0, r.err
    assert json.loads(r.out)["digest"] == digest


def test_other_clients_pull_a_package_whose_manifest_embeds_its_config(
        capsys, registry: Registryd, hello_object: Path, tmp_path: Path) -> None:
    """ebpm's manifest carries the config and the small layer in their descriptors (`data`)
    and the blobs are pushed all the same: crane, oras, regctl and skopeo 1.14 copy it as any
    package, with the manifest's digest unchanged, and every blob lands in their layouts
    (Debian's skopeo: the test above)."""
    from tests.signing import clients

    ref = f"{registry.host}/t/embedded:1.0.0"
    r = ebpm(capsys, "push", "--json", str(hello_object), ref)
    assert r.code == 0, r.err
    digest = json.loads(r.out)["digest"]
    manifest = json.loads(ebpm(capsys, "inspect", "--json", ref).out)["manifest"]
    assert manifest["config"]["data"] and manifest["layers"][0]["data"]
    env = clients.client_env(tmp_path)
    clients.run("crane", "pull", "--insecure", "--format=oci", ref, str(tmp_path / "crane"),
                env=env)
    clients.run("oras", "pull", "--plain-http", "-o", str(tmp_path / "oras"), ref, env=env)
    assert (tmp_path / "oras" / "hello.bpf.o").read_bytes() == hello_object.read_bytes()
    clients.run("regctl", "registry", "set", "--tls", "disabled", registry.host, env=env)
    clients.run("regctl", "image", "copy", ref, f"ocidir://{tmp_path / 'regctl'}:1.0.0", env=env)
    clients.run("skopeo-sigstore", "copy", "--quiet", "--src-tls-verify=false",
                f"docker://{ref}", f"oci:{tmp_path / 'skopeo'}:1.0.0", env=env)
    for layout in ("crane", "regctl", "skopeo"):
        index = json.loads((tmp_path / layout / "index.json").read_text())
        assert [m["digest"] for m in index["manifests"]] == [digest], layout
        for blob in (manifest["config"], *manifest["layers"]):
            hexpart = blob["digest"].partition(":")[2]
            assert (tmp_path / layout / "blobs" / "sha256" / hexpart).is_file(), layout


def test_an_embedded_config_or_layer_that_is_not_the_blob_is_refused(
        capsys, registry: Registryd, hello_object: Path, ebpm_env: Path) -> None:
    """A manifest whose embedded config or layer differs from the blob its digest names (a
    hostile manifest) is refused with one line naming it; the blob is not fetched instead and
    nothing is stored."""
    import base64

    ref = f"{registry.host}/t/lying:1.0.0"
    assert ebpm(capsys, "push", str(hello_object), ref).code == 0
    honest = json.loads(ebpm(capsys, "inspect", "--json", ref).out)["manifest"]
    # the config, then a layer (a small object travels in the manifest too), made to lie
    for tag, where in (("2.0.0", "config"), ("3.0.0", "layer 0")):
        doc = json.loads(json.dumps(honest))
        blob = doc["config"] if where == "config" else doc["layers"][0]
        data = base64.b64decode(blob["data"])
        blob["data"] = base64.b64encode(data[:-1] + bytes([data[-1] ^ 1])).decode()
        _put_raw_manifest(registry, "t/lying", tag, doc)
        r = ebpm(capsys, "pull", U, f"{registry.host}/t/lying:{tag}")
        errors = [line for line in r.err.splitlines() if line.startswith("error: ")]
        assert r.code == 1 and len(errors) == 1, r.err
        assert errors[0].startswith(f"error: {registry.host}/t/lying:{tag}: {where}: embedded data")
        assert store_entries(ebpm_env) == [] and store_blobs(ebpm_env) == []


def test_load_takes_layout_tars_that_other_tools_write(
        capsys, registry: Registryd, hello_object: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`tar -C DIR .` writes `.`, `./oci-layout`, `./blobs/`...; regctl's `image export` adds
    docker's manifest.json and names the entry by `io.containerd.image.name` (its ref.name is
    the tag alone). Both load; a link or a path outside the layout is still refused."""
    import io
    import tarfile

    from tests.signing import clients

    ref = f"{registry.host}/t/foreign:1.0.0"
    r = ebpm(capsys, "push", "--json", str(hello_object), ref)
    assert r.code == 0, r.err
    digest = json.loads(r.out)["digest"]
    assert ebpm(capsys, "pull", U, ref).code == 0
    saved, tree, dotted = tmp_path / "saved.tar", tmp_path / "tree", tmp_path / "dotted.tar"
    assert ebpm(capsys, "save", U, ref, "-o", str(saved)).code == 0
    tree.mkdir()
    subprocess.run(["tar", "xf", str(saved), "-C", str(tree)], check=True)
    subprocess.run(["tar", "cf", str(dotted), "-C", str(tree), "."], check=True)
    with tarfile.open(dotted) as tar:
        assert {".", "./oci-layout", "./index.json"} <= set(tar.getnames())
    env = clients.client_env(tmp_path)
    clients.run("regctl", "registry", "set", "--tls", "disabled", registry.host, env=env)
    exported = tmp_path / "regctl.tar"
    clients.run("regctl", "image", "export", ref, str(exported), env=env)
    with tarfile.open(exported) as tar:
        assert "manifest.json" in tar.getnames()

    for n, archive in enumerate((dotted, exported)):
        home = tmp_path / f"store-{n}"
        monkeypatch.setenv("EBPM_HOME", str(home))
        r = ebpm(capsys, "load", U, str(archive))
        assert r.code == 0 and f"loaded {ref}  {digest}" in r.out, (archive, r.err)
        r = ebpm(capsys, "--offline", "pull", U, "--json", ref)
        assert r.code == 0 and json.loads(r.out)["digest"] == digest, r.err

    for name, kind in (("./../escape", tarfile.REGTYPE), ("./index.json", tarfile.SYMTYPE),
                       ("./blobs", tarfile.SYMTYPE), ("./manifest.json", tarfile.LNKTYPE)):
        evil = tmp_path / "evil.tar"
        with tarfile.open(dotted) as src, tarfile.open(evil, "w") as dst:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            dst.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
            for member in src.getmembers():
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        monkeypatch.setenv("EBPM_HOME", str(tmp_path / "evil-store"))
        r = ebpm(capsys, "load", U, str(evil))
        assert r.code == 1 and f"unexpected member {name!r}" in r.err and "hint:" in r.err, name
        assert store_entries(tmp_path / "evil-store") == []


def test_a_damaged_or_foreign_archive_is_one_error_in_words(
        capsys, registry: Registryd, hello_object: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a tar, a tar cut short (inside a header, inside a member, a gzip stream cut) and an
    index.json of the wrong shape: each exits 1 with one line in words (no Python exception
    names or texts) and a hint, and loads nothing."""
    import gzip
    import io
    import tarfile

    ref = f"{registry.host}/t/damaged:1.0.0"
    assert ebpm(capsys, "push", str(hello_object), ref).code == 0
    assert ebpm(capsys, "pull", U, ref).code == 0
    saved = tmp_path / "saved.tar"
    assert ebpm(capsys, "save", U, ref, "-o", str(saved)).code == 0
    data = saved.read_bytes()
    with tarfile.open(saved) as tar:
        biggest = max(tar.getmembers(), key=lambda m: m.size)
        inside = biggest.offset_data + biggest.size // 2  # a cut inside a blob's bytes

    def layout(index: bytes) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, body in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
                               ("index.json", index)):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        return buf.getvalue()

    cases = [
        (b"x\n", "not a tar archive (plain, gzip, bzip2 or xz)"),
        (b"", "not a tar archive (plain, gzip, bzip2 or xz)"),
        (data[:1000], "damaged archive: it ends inside a member or without the end-of-archive "
                      "marker (truncated?)"),
        (data[:inside], "damaged archive: unexpected end of data"),
        (gzip.compress(data)[:3000], "damaged archive: Compressed file ended before the "
                                     "end-of-stream marker was reached"),
        (layout(b"[]"), "index.json must be a JSON object"),
        (layout(b'{"manifests": {}}'), 'index.json must hold a "manifests" list'),
        (layout(b"{"), "index.json is not valid JSON: Expecting property name enclosed in "
                       "double quotes: line 1 column 2 (char 1)"),
    ]
    monkeypatch.setenv("EBPM_HOME", str(tmp_path / "store"))
    for n, (content, why) in enumerate(cases):
        archive = tmp_path / f"bad-{n}.tar"
        archive.write_bytes(content)
        r = ebpm(capsys, "load", str(archive))
        assert r.code == 1 and r.err.splitlines()[0] == f"error: load {archive}: {why}", r.err
        assert "Error" not in r.err.splitlines()[0], r.err
        assert store_entries(tmp_path / "store") == []
        if n < 5:
            assert r.err.splitlines()[1].startswith("hint: "), r.err
