"""The store's commands and settings: cache prune/dir, sudo finding the invoking user's store,
and `ebpm registry up|status|down` with Debian's docker-registry."""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

from ebpm import config
from tests.cli import ebpm
from tests.registryd import free_port


def test_cache_dir_and_prune(capsys, ebpm_env: Path) -> None:
    from ebpm.oci.layout import Store

    assert ebpm(capsys, "cache", "dir").out.strip() == str(ebpm_env)
    store = Store()
    old = store.write_blob(b"orphan")
    hour_ago = time.time() - 3700
    os.utime(store.blob_path(old), (hour_ago, hour_ago))
    young = store.write_blob(b"an install may be about to name this")
    r = ebpm(capsys, "cache", "prune")  # an install running meanwhile keeps what it wrote
    assert r.code == 0 and r.out.startswith("pruned 1 blobs"), r.out
    assert "kept 1 unnamed blobs" in r.err and "--now" in r.err
    assert not store.has_blob(old) and store.has_blob(young)
    os.utime(store.blob_path(young), (hour_ago, hour_ago))
    store.write_blob(b"an install may be about to name this")  # found again: used now
    assert ebpm(capsys, "cache", "prune").out.startswith("pruned 0 blobs")
    r = ebpm(capsys, "cache", "prune", "--now")
    assert r.code == 0 and r.out.startswith("pruned 1 blobs") and not store.has_blob(young)
    assert ebpm(capsys, "list").err.strip() == "no packages in the store"


def test_sudo_uses_the_invoking_users_store(monkeypatch) -> None:
    monkeypatch.delenv("EBPM_HOME")
    monkeypatch.delenv("EBPM_CONFIG")
    user = pwd.getpwuid(os.getuid())
    monkeypatch.setenv("SUDO_USER", "nobody")
    monkeypatch.setenv("XDG_CACHE_HOME", "/root/.cache-of-root")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody").pw_dir
        assert config.store_home() == str(Path(nobody) / ".cache" / "ebpm")
        assert Path(config.config_dir()) == Path(nobody) / ".config" / "ebpm"
    monkeypatch.delenv("SUDO_USER")
    assert config.store_home() == "/root/.cache-of-root/ebpm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", user.pw_dir)
    assert config.store_home() == str(Path(user.pw_dir) / ".cache" / "ebpm")


def test_registry_up_status_down(capsys, hello_object: Path, monkeypatch) -> None:
    port = free_port()
    r = ebpm(capsys, "registry", "up", "--port", str(port))
    try:
        assert r.code == 0, r.err
        assert f"registry running on 127.0.0.1:{port} (docker-registry" in r.out
        # $EBPM_REGISTRY (unset: localhost:5000) is not this one: said, with the way to use it
        assert r.err == ("note: short names (tools/NAME) still resolve against localhost:5000; "
                         f"export EBPM_REGISTRY=localhost:{port} to use this registry\n")
        status = json.loads(ebpm(capsys, "registry", "status", "--json").out)
        assert status["running"] and status["address"] == f"127.0.0.1:{port}"
        ref = f"127.0.0.1:{port}/t/hello:1.0.0"
        assert ebpm(capsys, "push", str(hello_object), ref).code == 0
        monkeypatch.setenv("EBPM_REGISTRY", f"localhost:{port}")
        r = ebpm(capsys, "registry", "up")  # idempotent, and says so
        assert r.code == 0 and f"registry already running on 127.0.0.1:{port} " in r.out
        assert r.err == ""
        other = free_port()  # another port asked for: never the running one's address printed
        r = ebpm(capsys, "registry", "up", "--port", str(other))
        assert r.code == 2 and r.out == ""
        assert r.err.splitlines() == [
            f"error: registry up: a registry is already running on 127.0.0.1:{port}, "
            f"not on 127.0.0.1:{other}",
            f"hint: `ebpm registry down` first, or use it: EBPM_REGISTRY=127.0.0.1:{port}"]
    finally:
        r = ebpm(capsys, "registry", "down")
    assert r.out.strip() == "registry stopped"
    r = ebpm(capsys, "registry", "status")
    assert r.code == 3 and r.out.strip() == "not running"
    r = ebpm(capsys, "registry", "status", "--json")  # scripts get the same answer
    assert r.code == 3 and json.loads(r.out)["running"] is False
    assert ebpm(capsys, "registry", "down").out.strip() == "no registry was running"


def test_registry_up_on_a_busy_port_says_so_at_once(capsys) -> None:
    """A port another program listens on (any protocol, any address): one line, nothing
    started, and the status stays "not running"."""
    import socket

    with socket.socket() as other:
        other.bind(("0.0.0.0", 0))  # all addresses, as a server would: 127.0.0.1 is taken too
        other.listen()
        port = other.getsockname()[1]
        r = ebpm(capsys, "registry", "up", "--port", str(port))
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [
        f"error: registry up: 127.0.0.1:{port} is in use by another server",
        "hint: pass --port to pick another port (and set EBPM_REGISTRY to match)"]
    assert ebpm(capsys, "registry", "status").out.strip() == "not running"


def test_registry_up_notify_needs_a_url_with_a_host_and_a_secret(capsys, monkeypatch) -> None:
    """`--notify 'http://[bad'` started a registry that could never notify anyone."""
    monkeypatch.setenv("EBPM_HUB_SECRET", "s3cret")
    for url in ("http://[bad", "http:///-/events", "ftp://hub/-/events"):
        r = ebpm(capsys, "registry", "up", "--port", str(free_port()), "--notify", url)
        assert r.code == 2 and r.err.splitlines() == [
            f"error: --notify {url!r}: not an http(s) URL with a host",
            "hint: give an `ebpm hub serve`'s events URL, e.g. http://127.0.0.1:8080/-/events"]
    monkeypatch.delenv("EBPM_HUB_SECRET")
    r = ebpm(capsys, "registry", "up", "--notify", "http://127.0.0.1:8080/-/events")
    assert r.code == 2 and r.err.splitlines() == [
        "error: --notify 'http://127.0.0.1:8080/-/events': needs a shared secret",
        "hint: set EBPM_HUB_SECRET (the same as for `ebpm hub serve`)"]
    assert ebpm(capsys, "registry", "status").out.strip() == "not running"
