"""lock / install / update / tree / outdated against a real distribution registry.

Each test publishes its own small graph (repositories prefixed by the test's name) and works in
an empty store ($EBPM_HOME, from tests/conftest.py); `EBPM_REGISTRY` points short names at the
test registry.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ebpm.access import RegistryAccess, registry_for
from ebpm.deps.install import install
from ebpm.deps.lock import lock, update
from ebpm.deps.outdated import outdated
from ebpm.deps.tree import tree
from ebpm.errors import (
    DigestMismatchError,
    LockfileError,
    NoMatchingVersionError,
    NotFoundError,
    OfflineError,
    SignatureError,
)
from ebpm.oci.artifact import Artifact, Layer, pack
from ebpm.oci.layout import Store
from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
from ebpm.package import PackageConfig
from ebpm.progress import ProgressReporter
from ebpm.resolver.lockfile import Lockfile
from tests.cli import ebpm
from tests.registryd import Registryd

OFFLINE = RegistryAccess(offline=True)

pytestmark = pytest.mark.registry


def artifact(name: str, version: str, deps: dict[str, Any]) -> Artifact:
    config = PackageConfig(name=name, version=version, dependencies=deps, license="GPL-2.0")
    body = f"\x7fELF {name} {version}".encode()
    return pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, f"{name}.bpf.o", body)],
                annotations={"org.opencontainers.image.version": version})


def publish(registry: Registryd, graph: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """Push {name: {version: deps}}; returns {name@version: manifest digest}."""
    client = registry_for(registry.host)
    digests = {}
    for name, versions in graph.items():
        for version, deps in versions.items():
            art = artifact(name, version, deps)
            for blob in art.blobs:
                client.push_blob(name, blob.descriptor.digest, blob.data)
            client.put_manifest(name, version.replace("+", "_"), art.manifest_bytes, MANIFEST_V1)
            digests[f"{name}@{version}"] = art.digest
    return digests


def project(root: Path, deps: dict[str, str], name: str = "app") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'{k} = "{v}"\n' for k, v in deps.items())
    (root / "ebpm.toml").write_text(
        f'[package]\nname = "{name}"\nversion = "0.1.0"\n\n[dependencies]\n{lines}'
    )
    return root


@pytest.fixture
def env(registry: Registryd, monkeypatch: pytest.MonkeyPatch) -> Registryd:
    monkeypatch.setenv("EBPM_REGISTRY", registry.host)
    return registry


def snapshot(store: Path) -> dict[str, bytes]:
    """Every file of an OCI layout (blobs, index.json, oci-layout), by relative path."""
    out = {}
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store).as_posix()
        if path.is_file() and not rel.startswith("ebpm/"):
            out[rel] = path.read_bytes()
    return out


def test_diamond_lock_then_frozen_offline_reproducible(env: Registryd, tmp_path: Path,
                                                       ebpm_env: Path) -> None:
    digests = publish(env, {
        "dia-a": {"1.0.0": {"dia-b": "^1", "dia-c": "^1"}},
        "dia-b": {"1.0.0": {"dia-d": "^1"}},
        "dia-c": {"1.0.0": {"dia-d": ">=1.1, <2"}},
        "dia-d": {"1.0.0": {}, "1.1.0": {}, "1.2.0+b.1": {}, "2.0.0": {}},
    })
    app = project(tmp_path / "app", {"dia-a": "^1"})
    result = lock(app, allow_unsigned=True)
    assert result.written
    locked = Lockfile.load(app / "ebpm.lock")
    assert locked.locked_versions() == {
        f"{env.host}/dia-a": "1.0.0", f"{env.host}/dia-b": "1.0.0",
        f"{env.host}/dia-c": "1.0.0", f"{env.host}/dia-d": "1.2.0+b.1",
    }
    d = locked.get(f"{env.host}/dia-d")
    assert d is not None and d.tag == "1.2.0_b.1"
    assert d.manifest_digest == digests["dia-d@1.2.0+b.1"] and d.layers and d.config_digest
    assert locked.missing_digests() == []
    text = (app / "ebpm.lock").read_bytes()
    assert lock(app, allow_unsigned=True).written is False  # stable: same bytes
    assert (app / "ebpm.lock").read_bytes() == text

    # Two frozen installs into two empty stores give byte-identical layouts.
    homes = [tmp_path / "store1", tmp_path / "store2"]
    for home in homes:
        got = install(app, frozen=True, allow_unsigned=True, store=Store(home))
        assert got.fetched == 4 and not got.resolved
    assert snapshot(homes[0]) == snapshot(homes[1])
    assert len(snapshot(homes[0])) > 8

    # The filled store serves an offline install; an empty one fails clearly.
    got = install(app, frozen=True, access=OFFLINE, allow_unsigned=True, store=Store(homes[0]))
    assert got.fetched == 0
    with pytest.raises(OfflineError, match="not in the store"):
        install(app, frozen=True, access=OFFLINE, allow_unsigned=True, store=Store(tmp_path / "e"))
    # A lock can also be made offline from the filled store (tag lists are cached there).
    (app / "ebpm.lock").unlink()
    again = lock(app, access=OFFLINE, allow_unsigned=True, store=Store(homes[0]))
    assert again.lockfile.dumps() == text
    (app / "ebpm.lock").unlink()
    with pytest.raises(OfflineError, match=r"dia-a: no versions in the store \(offline\)"):
        lock(app, access=OFFLINE, allow_unsigned=True, store=Store(tmp_path / "none"))


def test_cli_conflict_cycle_missing(env: Registryd, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    publish(env, {
        "con-a": {"1.0.0": {"con-x": "^1"}}, "con-b": {"1.0.0": {"con-x": "^2"}},
        "con-x": {"1.0.0": {}, "2.0.0": {}},
        "cyc-a": {"1.0.0": {"cyc-c": "^1"}}, "cyc-c": {"1.0.0": {"cyc-b": "^1"}},
        "cyc-b": {"1.0.0": {"cyc-a": "^1"}},
        "mis-a": {"1.0.0": {"mis-b": "^1"}}, "mis-b": {"1.0.0": {"mis-gone": "^1"}, "1.1.0": {
            "mis-a": "^9"}},
    })
    monkeypatch.chdir(project(tmp_path / "con", {"con-a": "^1", "con-b": "^1"}))
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 1
    assert ("error: conflicting requirements for con-x: app@0.1.0 -> con-a@1.0.0 wants con-x ^1;"
            " app@0.1.0 -> con-b@1.0.0 wants con-x ^2 (available: 1.0.0, 2.0.0)") in r.err
    assert "hint:" in r.err and not (tmp_path / "con" / "ebpm.lock").exists()

    monkeypatch.chdir(project(tmp_path / "cyc", {"cyc-a": "^1"}))
    r = ebpm(capsys, "lock", "--allow-unsigned")
    assert r.code == 1
    assert "error: dependency cycle: cyc-a@1.0.0 -> cyc-c@1.0.0 -> cyc-b@1.0.0 -> cyc-a@1.0.0" \
        in r.err

    monkeypatch.chdir(project(tmp_path / "mis", {"mis-a": "^1"}))
    r = ebpm(capsys, "install", "--allow-unsigned")
    assert r.code == 1
    # Every dead end is named with its chain: mis-b 1.1.0 and 1.0.0 both fail, differently.
    assert ("error: no version of mis-a matches ^9: required by app@0.1.0 -> mis-a@1.0.0 -> "
            "mis-b@1.1.0 -> mis-a ^9 (available: 1.0.0); also package mis-gone not found: "
            "required by app@0.1.0 -> mis-a@1.0.0 -> mis-b@1.0.0 -> mis-gone ^1\n") in r.err


def test_deep_chain_tree_outdated_update(env: Registryd, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    n = 12
    publish(env, {f"deep-{i}": {"1.0.0": {f"deep-{i + 1}": "^1"} if i + 1 < n else {}}
                  for i in range(n)})
    app = project(tmp_path / "app", {"deep-0": "^1"})
    monkeypatch.chdir(app)
    r = ebpm(capsys, "install", "--allow-unsigned", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["resolved"] and len(doc["packages"]) == n
    r = ebpm(capsys, "--offline", "install", "--frozen", "--allow-unsigned")
    assert r.code == 0, r.err
    assert r.out == f"installed {n} packages: 0 fetched, {n} from the store\n"
    monkeypatch.delenv("EBPM_OFFLINE", raising=False)
    r = ebpm(capsys, "tree")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "app 0.1.0" and len(lines) == n + 1
    assert lines[1] == "└── deep-0 1.0.0" and lines[-1].endswith(f"└── deep-{n - 1} 1.0.0")

    r = ebpm(capsys, "outdated")  # nothing on stdout: an empty listing says so on stderr
    assert (r.code, r.out, r.err) == (0, "", "all dependencies are up to date\n")
    publish(env, {f"deep-{n - 1}": {"1.1.0": {}, "2.0.0": {}}})
    r = ebpm(capsys, "outdated", "--json")
    assert json.loads(r.out) == [{"package": f"{env.host}/deep-{n - 1}", "current": "1.0.0",
                                  "wanted": "1.1.0", "latest": "2.0.0"}]
    assert r.code == 3  # outdated: non-zero for CI, apart from errors (1)
    r = ebpm(capsys, "--offline", "outdated")  # the tag lists the online run cached
    assert r.code == 3 and f"deep-{n - 1}" in r.out and "2.0.0" in r.out
    assert r.err.startswith("offline: versions from the tag lists cached in the store (oldest "
                            "cached 20")
    r = ebpm(capsys, "lock", "--allow-unsigned")  # the lock keeps 1.0.0
    assert r.code == 0 and "unchanged" in r.out, r.err
    r = ebpm(capsys, "update", "--allow-unsigned", f"deep-{n - 1}")
    assert r.code == 0, r.err
    assert f"updated {env.host}/deep-{n - 1} 1.0.0 -> 1.1.0" in r.out
    r = ebpm(capsys, "update", "--allow-unsigned", "nope")
    assert r.code == 2 and "'nope' is not a dependency" in r.err


@pytest.mark.parametrize("value", ["http://127.0.0.1:5000", "127.0.0.1:5000/", "bad registry",
                                   "127.0.0.1:99999", "https://u:secret@ghcr.io"])
def test_a_bad_ebpm_registry_is_one_usage_error(value: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """EBPM_REGISTRY that is no HOST[:PORT] is refused by name wherever short names are
    resolved, before anything is asked of a registry or written."""
    monkeypatch.setenv("EBPM_REGISTRY", value)
    app = project(tmp_path / "app", {"lib": "^0.1"})
    shown = value.replace("u:secret", "***")
    for args in (["lock", "-C", str(app)], ["install", "-C", str(app)],
                 ["outdated", "-C", str(app)], ["pull", "lib"]):
        r = ebpm(capsys, *args)
        assert (r.code, r.out) == (2, ""), (args, r)
        assert r.err == (f"error: EBPM_REGISTRY='{shown}' is not a registry address\n"
                         "hint: export EBPM_REGISTRY=HOST[:PORT] (no scheme, no path)\n"), args
    assert not (app / "ebpm.lock").exists()


class Counting(ProgressReporter):
    """Records the package counter that install reports (done out of total)."""

    def __init__(self) -> None:
        self.totals: list[tuple[str, int]] = []
        self.done_count = 0
        self.lock = threading.Lock()

    def task(self, description: str, total: int, *, unit: str = "bytes"
             ) -> Callable[[int], None]:
        self.totals.append((description, total))

        def advance(n: int) -> None:
            with self.lock:
                self.done_count += n

        return advance


def test_stale_lock_locked_and_frozen(env: Registryd, tmp_path: Path) -> None:
    publish(env, {"st-a": {"1.0.0": {}, "1.5.0": {}}, "st-b": {"1.0.0": {}}})
    app = project(tmp_path / "app", {"st-a": "^1", "st-b": "*"})
    with pytest.raises(LockfileError, match="missing"):
        install(app, locked=True, allow_unsigned=True)
    counting = Counting()
    install(app, allow_unsigned=True, reporter=counting, jobs=2)
    assert counting.totals == [("packages", 2)] and counting.done_count == 2
    project(app, {"st-a": "~1.0", "st-b": "*"})
    for flags in ({"locked": True}, {"frozen": True}):
        with pytest.raises(LockfileError, match="out of date with ebpm.toml"):
            install(app, allow_unsigned=True, **flags)  # type: ignore[arg-type]
    # outdated measures the lock: a stale one is that error, not "all up to date"
    with pytest.raises(LockfileError, match="out of date with ebpm.toml") as info:
        outdated(app)
    assert info.value.hint == "run `ebpm lock` first: outdated measures the locked versions"
    result = install(app, allow_unsigned=True)  # resolves again
    assert result.resolved
    assert result.lockfile.locked_versions() == {
        f"{env.host}/st-a": "1.0.0", f"{env.host}/st-b": "1.0.0"
    }
    # A damaged lock stops install; `ebpm lock` writes it again.
    good = (app / "ebpm.lock").read_bytes()
    (app / "ebpm.lock").write_bytes(good.replace(b'"lock_version": 1', b'"lock_version": 7'))
    with pytest.raises(LockfileError, match="lock_version 7 is not supported"):
        install(app, allow_unsigned=True)
    assert lock(app, allow_unsigned=True).written
    assert (app / "ebpm.lock").read_bytes() == good
    # --frozen without ebpm.toml installs the lock alone.
    (app / "ebpm.toml").unlink()
    assert install(app, frozen=True, allow_unsigned=True).fetched == 0


def test_deleted_tag_and_tampered_blobs(env: Registryd, tmp_path: Path, ebpm_env: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:  # the layers as blobs, as large objects' are
        patched.setattr("ebpm.oci.artifact.MAX_EMBEDDED", 0)
        digests = publish(env, {"tam-a": {"1.0.0": {"tam-b": "^1"}}, "tam-b": {"1.0.0": {}}})
    app = project(tmp_path / "app", {"tam-a": "^1"})
    lock(app, allow_unsigned=True)
    entry = Lockfile.load(app / "ebpm.lock").get(f"{env.host}/tam-b")
    assert entry is not None

    # Tamper the object blob inside the registry's storage: a fresh install refuses it.
    hexpart = entry.layers[0].split(":", 1)[1]
    data = env.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"
    original = data.read_bytes()
    data.write_bytes(original.replace(b"ELF", b"EVL"))
    try:
        with pytest.raises(DigestMismatchError):
            install(app, frozen=True, allow_unsigned=True, store=Store(tmp_path / "fresh"))
        assert not (tmp_path / "fresh" / "blobs" / "sha256" / hexpart).exists()
    finally:
        data.write_bytes(original)

    # Tamper the copy in the local store: an offline install refuses it too.
    blob = ebpm_env / "blobs" / "sha256" / hexpart
    blob.write_bytes(blob.read_bytes() + b"!")
    with pytest.raises(DigestMismatchError):
        install(app, frozen=True, access=OFFLINE, allow_unsigned=True)
    blob.unlink()
    install(app, frozen=True, allow_unsigned=True)  # fetched again, verified

    # The tag is deleted in the registry: the store still serves it; an empty store cannot.
    registry_for(env.host).delete_manifest("tam-b", digests["tam-b@1.0.0"])
    assert install(app, frozen=True, allow_unsigned=True).fetched == 0
    with pytest.raises(NotFoundError):
        install(app, frozen=True, allow_unsigned=True, store=Store(tmp_path / "empty"))
    with pytest.raises(NoMatchingVersionError, match=r"no version of tam-b matches \^1: required "
                       r"by app@0.1.0 -> tam-a@1.0.0 -> tam-b \^1 \(available: none\)"):
        lock(app, allow_unsigned=True, store=Store(tmp_path / "empty2"), unlock={"*"})


def test_signer_is_pinned(env: Registryd, tmp_path: Path) -> None:
    from ebpm.oci.reference import parse
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    digests = publish(env, {"sig-a": {"1.0.0": {}}})
    good = keys.generate("good")
    other = keys.generate("other")
    trust.add_trust(f"{env.host}/sig-*", good.public_path)
    trust.add_trust(f"{env.host}/sig-*", other.public_path)
    ref = parse(f"{env.host}/sig-a:1.0.0")
    sign(ref, digests["sig-a@1.0.0"], str(good.private_path))
    app = project(tmp_path / "app", {"sig-a": "1.0.0"})
    with pytest.raises(SignatureError):  # the policy requires a signature: unsigned b refused
        publish(env, {"sig-b": {"1.0.0": {}}})
        lock(project(tmp_path / "b", {"sig-b": "1.0.0"}))
    lock(app)
    entry = Lockfile.load(app / "ebpm.lock").get(f"{env.host}/sig-a")
    assert entry is not None
    assert entry.key_id == good.key_id and entry.signature_digest.startswith("sha256:")
    assert install(app, frozen=True).packages[0].signed_by == good.key_id
    # A lock pinned to another signer refuses the package.
    lockfile = Lockfile.load(app / "ebpm.lock")
    from ebpm.record import replace

    lockfile.with_entry(replace(entry, key_id=other.key_id)).dump(app / "ebpm.lock")
    with pytest.raises(SignatureError, match=f"was signed by key {other.key_id}"):
        install(app, frozen=True, store=Store(tmp_path / "s2"))


def test_a_referrer_only_signature_is_pinned(env: Registryd, tmp_path: Path) -> None:
    """A package signed only by an OCI 1.1 referrer (`ebpm sign --referrers`, current cosign):
    the lock pins the referrer's digest, from the registry and later from the store alone."""
    from ebpm.deps.source import RegistrySource
    from ebpm.oci.reference import parse
    from ebpm.oci.referrers import is_signature_referrer
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    digests = publish(env, {"ref-a": {"1.0.0": {}}})
    digest = digests["ref-a@1.0.0"]
    good = keys.generate("good")
    trust.add_trust(f"{env.host}/ref-*", good.public_path)
    sign(parse(f"{env.host}/ref-a:1.0.0"), digest, str(good.private_path), referrers=True)
    client = registry_for(env.host)
    assert client.head_manifest("ref-a", f"sha256-{digest[7:]}.sig") is None  # no legacy tag
    [referrer] = [d for d in client.referrers("ref-a", digest) if is_signature_referrer(d)]
    app = project(tmp_path / "app", {"ref-a": "1.0.0"})
    store = Store(tmp_path / "store")
    lock(app, store=store)
    entry = Lockfile.load(app / "ebpm.lock").get(f"{env.host}/ref-a")
    assert entry is not None
    assert entry.signature_digest == referrer.digest and entry.key_id == good.key_id
    offline = RegistrySource(store, access=RegistryAccess.from_env(offline=True))
    assert offline.signature_digest(f"{env.host}/ref-a", digest) == referrer.digest
    online = RegistrySource(Store(tmp_path / "empty"))  # nothing stored: asks the registry
    assert online.signature_digest(f"{env.host}/ref-a", digest) == referrer.digest


def test_tree_of_a_diamond_marks_repeats(tmp_path: Path) -> None:
    from ebpm.resolver.lockfile import LockEntry

    d = "sha256:" + "1" * 64
    host = "localhost:5000"

    def e(name: str, deps: tuple[str, ...] = ()) -> LockEntry:
        return LockEntry(f"{host}/{name}", "1.0.0", tag="1.0.0", manifest_digest=d,
                         config_digest=d, dependencies=tuple((x, f"{host}/{x}") for x in deps))

    lockfile = Lockfile.create("sha256:" + "2" * 64, {"a": f"{host}/a", "b": f"{host}/b"},
                               [e("a", ("c",)), e("b", ("c",)), e("c", ("d",)), e("d")])
    project(tmp_path, {"a": "^1", "b": "^1"})
    lockfile.dump(tmp_path / "ebpm.lock")
    assert tree(tmp_path) == [
        "app 0.1.0",
        "├── a 1.0.0",
        "│   └── c 1.0.0",
        "│       └── d 1.0.0",
        "└── b 1.0.0",
        "    └── c 1.0.0 (*)",
    ]
    assert outdated  # imported for the CLI test above
    assert update


def test_url_dependency_goes_through_the_transport(tmp_path: Path, ebpm_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A url dependency is fetched with ebpm's User-Agent, checked, stored, then served offline."""
    import hashlib
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ebpm import __version__

    body = b"\x7fELF url dependency"
    agents: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            agents.append(self.headers.get("User-Agent", ""))
            if self.path == "/gone.bpf.o":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/tool.bpf.o"
        app = tmp_path / "app"
        app.mkdir()
        sha = hashlib.sha256(body).hexdigest()
        (app / "ebpm.toml").write_text(
            '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n'
            f'tool = {{ url = "{url}", sha256 = "{sha}" }}\n'
        )
        result = lock(app, store=Store(tmp_path / "store"))
        assert [p.kind for p in result.packages] == ["url"] and not result.packages[0].cached
        assert agents == [f"ebpm/{__version__}"]
        # added: shown by its sha256, never as the '' that means removed
        assert result.changes == ((f"url:{url}", "", f"sha256:{sha[:12]}"),)
        again = install(app, frozen=True, access=OFFLINE, store=Store(tmp_path / "store"))
        assert again.packages[0].cached and len(agents) == 1
        with pytest.raises(OfflineError):
            install(app, frozen=True, access=OFFLINE, store=Store(tmp_path / "empty"))
        # a url pinned anew is fetched even when the store holds its file: a lock never pins
        # a URL that does not serve it (it would fail on every other machine)
        toml = (app / "ebpm.toml").read_text()
        (app / "ebpm.toml").write_text(toml.replace("/tool.bpf.o", "/gone.bpf.o"))
        with pytest.raises(NotFoundError, match="404"):
            lock(app, store=Store(tmp_path / "store"))
        (app / "ebpm.toml").write_text(toml)
        assert not lock(app, store=Store(tmp_path / "store")).written  # pinned before: no fetch
        assert len(agents) == 2
        (app / "ebpm.toml").write_text((app / "ebpm.toml").read_text().replace(sha, "0" * 64))
        with pytest.raises(DigestMismatchError):
            lock(app, store=Store(tmp_path / "other"))
        assert not (tmp_path / "other" / "blobs" / "sha256" / sha).exists()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


_COUNT_CREATED = """
import os, sys
created = []

def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and isinstance(args[2], int) \
            and args[2] & os.O_CREAT:
        created.append(os.fsdecode(args[0]))
    if event == "open" and isinstance(args[0], (str, bytes)) \
            and os.fsdecode(args[0]).endswith("/index.json"):
        indexed.append(1)
    if event == "os.mkdir":
        made.append(os.fsdecode(args[0]))

made = []
indexed = []
sys.addaudithook(audit)
from ebpm import files
synced = []
fsync, syncfs = os.fsync, files._syncfs
os.fsync = lambda fd: synced.append("fsync") or fsync(fd)
files._syncfs = lambda root: synced.append("syncfs") or syncfs(root)
from ebpm.oci.layout import Store
walks = []
entries = Store.entries
Store.entries = lambda self: walks.append(1) or entries(self)
from ebpm.cli import main
code = main(sys.argv[1:])
print("\\n".join(created), file=sys.stderr)
print(f"walks: {len(walks)}", file=sys.stderr)
print(f"synced: {' '.join(synced)}", file=sys.stderr)
print(f"index reads: {len(indexed)}", file=sys.stderr)
print("\\n".join(f"mkdir: {d}" for d in made), file=sys.stderr)
sys.exit(code or 0)
"""


def test_a_frozen_install_creates_each_file_of_the_store_once(
    env: Registryd, tmp_path: Path,
) -> None:
    """What a signed install --frozen creates into an empty store, every file once (creating a
    file is what an install does most, after its requests): per package its 3 blobs and its
    signature manifest (the signature's config and payload are made from it when read);
    then the layout file and the index, which carries the verification records (no file of
    their own). No file written twice, none
    created and thrown away (the staging files and temp names are the files that end up in
    place). No package is looked up by a walk over the whole index (the install walks it
    once, before its workers start)."""
    import os
    import subprocess
    import sys

    from ebpm.oci.reference import parse
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from ebpm.trust.sign import sign

    graph = {f"files-{i}": {"1.0.0": {f"files-{i + 1}": "^1"} if i < 3 else {}} for i in range(4)}
    digests = publish(env, graph)
    key = keys.generate("files")
    trust.add_trust(f"{env.host}/files-*", key.public_path)
    for name in graph:
        sign(parse(f"{env.host}/{name}:1.0.0"), digests[f"{name}@1.0.0"], str(key.private_path))
    app = project(tmp_path / "app", {"files-0": "^1"})
    lock(app, store=Store(tmp_path / "lock-store"))
    home = tmp_path / "new-store"
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_CREATED, "install", "--frozen", "-C", str(app)],
        env=dict(os.environ, EBPM_HOME=str(home), EBPM_JOBS="4"), capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    created = [p for p in proc.stderr.splitlines() if p.startswith(str(home))
               and os.path.basename(p) != "lock"]  # the store's lock file: opened, kept
    files = sorted(str(p) for p in home.rglob("*") if p.is_file() and p.name != "lock")
    assert len(files) == 4 * len(graph) + 2, files  # + oci-layout and index.json
    assert len(created) == len(files), sorted(created)
    # made durable at once before the index names them (one syncfs), then the index and its
    # directory: no fsync per package
    assert "synced: syncfs fsync fsync" in proc.stderr.splitlines(), proc.stderr[-300:]
    # and no package looks itself up by walking every index entry (O(n^2) over an install):
    # one walk before the workers start (deps/install.py chooses the hasher), none per package
    assert "walks: 1" in proc.stderr.splitlines()
    # the store's directories are made once, not at every package's turn at the store lock
    made = [d.removeprefix("mkdir: ") for d in proc.stderr.splitlines() if d.startswith("mkdir: ")]
    assert made.count(str(home / "ebpm")) == 1, made  # (mkdir -p tries a leaf twice)
    assert made.count(str(home / "blobs" / "sha256")) <= 2, made
    # again, all of it in the store now: the index is read a fixed number of times (before the
    # workers start and in their batch), not once per package
    again = subprocess.run(
        [sys.executable, "-c", _COUNT_CREATED, "install", "--frozen", "-C", str(app)],
        env=dict(os.environ, EBPM_HOME=str(home), EBPM_JOBS="4"), capture_output=True,
        text=True)
    assert again.returncode == 0, again.stderr[-1500:]
    reads = next(x for x in again.stderr.splitlines() if x.startswith("index reads: "))
    assert int(reads.removeprefix("index reads: ")) <= 2 < len(graph), reads
    assert "walks: 1" in again.stderr.splitlines()
