"""Cold pull of a small signed package from a loopback registry into an empty store.

ebpm: `ebpm pull REF` (the signature is fetched and checked against the trust policy: enforced,
as users run it). Peers, each run the way its users run it, alternated with ebpm round by round:
- skopeo 1.9.3 (Debian): `skopeo copy docker://REF oci:DIR:TAG`, no signature check;
- crane: `crane pull --format=oci REF DIR`, one process, no signature check;
- oras: `oras pull REF -o DIR`, no signature check;
- crane + cosign: `crane pull` then `cosign verify --key` (the "pull + signature check" peer).

Then a package with a 20 MiB and a 100 MiB layer: time against crane, and ebpm's peak RSS
(memory must stay flat in the layer's size: every layer streamed and hashed once).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.common import (
    EBPM,
    PYTHON,
    ROOT,
    alternate_many,
    ebpm_env,
    publish,
    ratio_line,
    request_kinds,
    requests_of,
    run_quiet,
    tool,
    version_of,
)

ROUNDS = 9
SOURCE = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def peak_rss(cmd: list[str], env: dict[str, str]) -> int:
    """Run `cmd`; its peak resident set size in bytes, as /usr/bin/time reports it (wait4 on a
    child of this process would count this process's memory: the kernel keeps the high-water
    mark of the memory the child had before exec, and a vfork child has ours)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]}: exit {proc.returncode}: {proc.stderr[-300:]}")
    return int(proc.stderr.strip().splitlines()[-1]) * 1024


def _object(work: Path) -> Path:
    src = work / "hello.bpf.c"
    src.write_text(SOURCE)
    obj = work / "hello.bpf.o"
    multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I", multiarch, "-c", str(src),
                    "-o", str(obj)], check=True)
    return obj


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-pull-"))
    reg = start_registry(root=work / "registry")
    try:
        obj = _object(work)
        env = ebpm_env(EBPM_HOME=str(work / "home"), EBPM_CONFIG=str(work / "config"))
        run_quiet([EBPM, "key", "generate", "--trust", f"{reg.host}/**"], env=env)
        ref = f"{reg.host}/bench/hello:1.0.0"
        run_quiet([EBPM, "push", "--sign", str(obj), ref], env=env)
        pub = work / "config" / "keys" / "default.pub"
        store, layout = work / "home", work / "layout"
        cosign_env = dict(os.environ, HOME=str(work), TUF_ROOT=str(work / "tuf"))

        def clean() -> None:
            for d in (store, layout):
                shutil.rmtree(d, ignore_errors=True)
            # the policy and keys stay (config); only the store is emptied

        def ebpm() -> None:
            run_quiet([EBPM, "pull", ref], env=env)

        skopeo, crane, oras, cosign = "skopeo", tool("crane"), tool("oras"), tool("cosign")
        peers: dict[str, list[str]] = {
            "skopeo": ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                       f"docker://{ref}", f"oci:{layout}:hello"],
        }
        versions = {"skopeo": version_of((skopeo, "--version"))}
        if crane:
            peers["crane"] = [crane, "pull", "--insecure", "--format=oci", ref, str(layout)]
            versions["crane"] = "crane " + version_of((crane, "version"))
        if oras:
            peers["oras"] = [oras, "pull", "--plain-http", "-o", str(layout), ref]
            versions["oras"] = "oras " + version_of((oras, "version"))
        verify = None
        if crane and cosign:
            verify = [cosign, "verify", "--key", str(pub), "--insecure-ignore-tlog=true",
                      "--insecure-ignore-sct=true", "--allow-http-registry", "--offline", ref]
            versions["crane+cosign"] = "crane + cosign " + version_of((cosign, "version"))

        def runner(name: str):  # type: ignore[no-untyped-def]
            if name == "crane+cosign":
                def both() -> None:
                    run_quiet(peers["crane"])
                    run_quiet(verify or [], env=cosign_env)
                return both
            return lambda: run_quiet(peers[name])

        names = list(peers) + (["crane+cosign"] if verify else [])
        fns = [ebpm] + [runner(n) for n in names]
        for fn in fns:  # warm caches, check every side works
            clean()
            fn()
        times = alternate_many(fns, ROUNDS, setup=clean)
        ours = times[0]
        lines = [f"peers: {'; '.join(versions[n] for n in names)} (the package embeds its "
                 "config and small layer in the manifest, `data`: ebpm and crane read it, "
                 "skopeo 1.9.3 ignores it and fetches the blobs, oras fetches the layer)"]
        targets = {"skopeo": 2.0, "crane": 4.0}
        for name, peer in zip(names, times[1:], strict=True):
            lines.append(ratio_line(f"cold pull, small signed package vs {name}", ours, peer,
                                    name, targets.get(name)))
        asked = _requests(ref, env)
        lines += asked
        requests = int(asked[0].split(": ", 1)[1].split(" ", 1)[0])
        lines += _split(ref, env, clean, peers["skopeo"], peers.get("crane"),
                        work / "config" / "policy.toml", requests)
        lines += floor()
        lines += _large(work, reg.host, env, crane)
        return lines
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _requests(ref: str, env: dict[str, str]) -> list[str]:
    """The HTTP requests of a cold signed pull (as the transport logs them)."""
    shutil.rmtree(env["EBPM_HOME"], ignore_errors=True)
    kinds = request_kinds(requests_of(["pull", ref], env))
    return [f"requests of a cold signed pull: {len(kinds)} ({', '.join(kinds)}); "
            "skopeo 1.9.3 makes 4 (the /v2/ ping, manifest, config, layer), crane 2 (the "
            "ping and the manifest, seen with crane -v), oras 2 (the manifest and the layer, "
            "seen with oras -d); none checks a signature"]


_MODULES = """
import sys
from ebpm.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(" ".join(m for m in sys.modules if not m.startswith("__")))
"""


def _split(ref: str, env: dict[str, str], clean: Callable[[], None], skopeo: list[str],
           crane: list[str] | None, policy: Path, requests: int) -> list[str]:
    """A cold pull split into Python's start, imports (every module the pull imports, imported
    alone, in the same order) and the rest (requests, hashing, the signature check, store
    writes); and the floor (`_FLOOR`, and once more without its fsyncs: crane makes none)
    against skopeo and crane (the 4x target's peer: a floor above 4x crane means no Python
    client that checks the signature and keeps the store crash-consistent meets it).
    Alternating, in the same rounds."""
    clean()
    names = subprocess.run([PYTHON, "-c", _MODULES, "pull", ref], env=env, capture_output=True,
                           text=True, check=True).stdout.split()
    ours = [n for n in names if n == "ebpm" or n.startswith("ebpm.")]

    def importing(modules: list[str]) -> str:  # (no cycle collector, as ebpm pull)
        return ("import gc, importlib\ngc.disable()\nfor m in " + repr(modules) +
                ":\n    try:\n        "
                "importlib.import_module(m)\n    except ImportError:\n        pass\n"
                "import gc\ngc.freeze()\n")  # the exit as ebpm's (ebpm.cli.startup.freeze)

    code = importing(names)
    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-floor-"))
    # as many empty modules as ebpm's own (a package and its submodules): what CPython's
    # import machinery alone costs per module (finding, reading, a module object)
    (work / "emptypkg").mkdir()
    (work / "emptypkg" / "__init__.py").write_text("")
    for i in range(1, len(ours)):
        (work / "emptypkg" / f"m{i}.py").write_text("")
    empty = (f"import sys\nsys.path.insert(0, {str(work)!r})\nimport emptypkg\n"
             f"for i in range(1, {len(ours)}):\n    __import__(f'emptypkg.m{{i}}')\n")
    try:
        host, _, rest = ref.partition("/")
        repository, _, tag = rest.rpartition(":")
        files = (f"KEYFILE = {str(work / 'key')!r}\nSIGFILE = {str(work / 'sig')!r}\n"
                 f"POLICY = {str(policy)!r}\nSTORE = {env['EBPM_HOME']!r}\n"
                 f"HOST = {host!r}\nREPOSITORY = {repository!r}\nTAG = {tag!r}\n")
        subprocess.run([PYTHON, "-c", files + _KEY], check=True)
        fns = [partial(run_quiet, [PYTHON, "-c", "pass"], env=env),
               partial(run_quiet, [PYTHON, "-c", code], env=env),
               partial(run_quiet, [EBPM, "pull", ref], env=env),
               partial(run_quiet, [PYTHON, "-c", files + "DURABLE = True\n" + _FLOOR], env=env),
               partial(run_quiet, skopeo),
               partial(run_quiet, [PYTHON, "-c", importing([n for n in names if n not in ours])],
                       env=env),
               partial(run_quiet, [PYTHON, "-c", empty], env=env),
               partial(run_quiet, [PYTHON, "-c", files + "DURABLE = False\n" + _FLOOR],
                       env=env)]
        if crane:
            fns.append(partial(run_quiet, crane))
        times = alternate_many(fns, SPLIT_ROUNDS, setup=clean)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    start, imports, whole, floor_, peer, others, machinery = (min(t) * 1000 for t in times[:7])
    whole_m, floor_m, peer_m = (statistics.median(t) * 1000 for t in times[2:5])
    fsyncs_m = floor_m - statistics.median(times[7]) * 1000
    against_crane = []
    if crane:
        crane_m, crane_ = statistics.median(times[8]) * 1000, min(times[8]) * 1000
        room = 4 * crane_m - floor_m
        against_crane = [
            f"the same floor against crane (same rounds): {floor_m:.1f} ms [{floor_:.1f}] = "
            f"{floor_m / crane_m:.2f}x crane ({crane_m:.1f} ms [{crane_:.1f}]), without its "
            f"fsyncs {(floor_m - fsyncs_m) / crane_m:.2f}x, ebpm {whole_m / crane_m:.2f}x; "
            f"4x crane "
            + (f"leaves {room:.1f} ms above the floor for ebpm's own work" if room >= 0 else
               f"is {-room:.1f} ms below the floor: no Python client that checks the "
               "signature and keeps the store crash-consistent meets it on this machine")]
    return [
        f"cold signed pull split (best of {SPLIT_ROUNDS}): python start {start:.1f} ms, imports "
        f"+{imports - start:.1f} ms ({len(names)} modules), the rest +{whole - imports:.1f} "
        f"ms ({requests} requests, hashing, the signature check, store writes); whole "
        f"{whole:.1f} ms",
        f"floor of a signature-checked pull in Python (same rounds, medians; best of "
        f"{SPLIT_ROUNDS} in brackets): CPython's start, socket, json, threading, the same "
        f"2 requests on one connection (manifest, signature manifest), "
        f"the policy (its text and the document `ebpm trust` saved beside it, JSON), "
        f"cryptography's EC and SHA-256 (the digests of the manifests and of the embedded "
        f"blobs), one key read, one ECDSA check, the store's files written as ebpm's (4 blobs, "
        f"oci-layout, index.json; each fsynced, the 2 directories fsynced: "
        f"{fsyncs_m:.1f} ms of the floor: crane makes none, skopeo 1.9.3 its own) and the "
        f"exit "
        f"{floor_m:.1f} ms [{floor_:.1f}] = {floor_m / peer_m:.2f}x skopeo ({peer_m:.1f} ms "
        f"[{peer:.1f}]); ebpm {whole_m:.1f} ms [{whole:.1f}] = {whole_m / peer_m:.2f}x, "
        f"{whole_m - floor_m:.1f} ms above the floor (ebpm's own modules, signal and fcntl, "
        f"its client's and store's code over the same work); 2x skopeo leaves "
        f"{2 * peer_m - floor_m:.1f} ms for those",
        f"imports split (best of {SPLIT_ROUNDS}): the standard library and cryptography "
        f"+{others - start:.1f} ms, ebpm's own {len(ours)} modules +{imports - others:.1f} "
        f"ms, of which CPython's import machinery alone ({len(ours)} empty modules) "
        f"{machinery - start:.1f} ms",
        *against_crane,
    ]


# The floor: what any Python client that pulls and checks a signature as ebpm does cannot skip:
# CPython's start, the stdlib any registry client needs, the two requests (one connection,
# HTTP/1.1 by hand, as ebpm.oci.http), the policy (its text, and the TOML document that
# `ebpm trust` saved beside it as JSON: no TOML parser, docs/signing.md), cryptography's EC and
# hash primitives (as ebpm imports them; its SHA-256 makes the digests too: no hashlib, which
# loads a second OpenSSL), the digests, one key read and one check (of a signature made here:
# as costly as the package's), the store's files written and made durable as the issue's
# crash rule asks (`DURABLE`: the fsyncs, measured apart since crane makes none), and the
# exit; without the cycle collector, as ebpm pull runs.
_FLOOR = r"""
import gc; gc.disable()  # no cycle collector while it works, as ebpm pull (ebpm/cli/pull.py)
import binascii, json, os, socket, threading
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
class Verify(ec.ECDSA):
    def __init__(self): pass
    algorithm = hashes.SHA256()
def sha256(data):
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()
name, port = HOST.rsplit(':', 1)
conn = socket.create_connection((name, int(port)), timeout=10)
def more():
    chunk = conn.recv(65536)
    assert chunk, 'the registry closed the connection'
    return chunk
def get(identifier):
    conn.sendall(f'GET /v2/{REPOSITORY}/manifests/{identifier} HTTP/1.1\r\nHost: {HOST}\r\n'
                 'Accept: application/vnd.oci.image.manifest.v1+json\r\n\r\n'.encode())
    data = b''
    while b'\r\n\r\n' not in data:
        data += more()
    head, body = data.split(b'\r\n\r\n', 1)
    assert head.startswith(b'HTTP/1.1 200 '), head
    size = int(head.lower().split(b'content-length:', 1)[1].split(b'\r\n', 1)[0])
    while len(body) < size:
        body += more()
    return body
manifest = get(TAG)
digest = sha256(manifest)
signed = get('sha256-' + digest + '.sig')
conn.close()
blobs = {digest: manifest, sha256(signed): signed}
parsed = json.loads(manifest)
for desc in [parsed['config'], *parsed['layers']]:
    data = binascii.a2b_base64(desc['data'])
    assert 'sha256:' + sha256(data) == desc['digest']
    blobs[desc['digest'][7:]] = data
signature = json.loads(signed)['layers'][0]['annotations']['dev.cosignproject.cosign/signature']
binascii.a2b_base64(signature)
head, tail = os.path.split(POLICY)
saved = json.loads(open(os.path.join(head, '.' + tail + '.json'), 'rb').read())
assert saved['text'] == open(POLICY).read()
sha256(open(POLICY, 'rb').read())
k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), open(KEYFILE, 'rb').read())
k.verify(open(SIGFILE, 'rb').read(), b'payload', Verify())
def write(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data)
    if DURABLE:
        os.fsync(fd)
    os.close(fd)
def sync(directory):
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    if DURABLE:
        os.fsync(fd)
    os.close(fd)
shas = os.path.join(STORE, 'blobs', 'sha256')
os.makedirs(shas)
write(os.path.join(STORE, 'oci-layout'), b'{"imageLayoutVersion":"1.0.0"}')
for name, data in blobs.items():
    write(os.path.join(STORE, '.' + name), data)
    os.rename(os.path.join(STORE, '.' + name), os.path.join(shas, name))
sync(shas)
index = {'schemaVersion': 2, 'manifests': [{
    'mediaType': 'application/vnd.oci.image.manifest.v1+json', 'digest': 'sha256:' + digest,
    'size': len(manifest), 'annotations': {'org.opencontainers.image.ref.name': TAG}}]}
write(os.path.join(STORE, '.index.json'), json.dumps(index).encode())
os.rename(os.path.join(STORE, '.index.json'), os.path.join(STORE, 'index.json'))
sync(STORE)
import gc; gc.freeze()  # the exit as ebpm's: no collection walks what lives until then
"""
SPLIT_ROUNDS = 11


# What an ebpm pull cannot avoid, measured side by side: the candidates of issue 18 for the
# HTTP stack and the ECDSA check, each on top of the rest of the pull path (what it adds to a
# pull), ebpm's own modules of the pull path, and click. Import costs, best of FLOOR_ROUNDS,
# alternating, in the same run: the noise of a shared machine only ever adds, and differences
# of medians of such small figures swing with it.
FLOOR_ROUNDS = 15
_PULL_PATH = ("import ebpm.transfer.pull, ebpm.oci.remote, ebpm.oci.layout, ebpm.access, "
              "ebpm.trust.verification, ebpm.trust.policy, ebpm.trust.discovery\n")
_KEY = ("from cryptography.hazmat.primitives.asymmetric import ec\n"
        "from cryptography.hazmat.primitives import hashes, serialization as s\n"
        "k = ec.generate_private_key(ec.SECP256R1())\n"
        "open(KEYFILE, 'wb').write(k.public_key().public_bytes(s.Encoding.X962, "
        "s.PublicFormat.UncompressedPoint))\n"
        "open(SIGFILE, 'wb').write(k.sign(b'payload', ec.ECDSA(hashes.SHA256())))\n")
_LOAD = ("from cryptography.hazmat.primitives.asymmetric import ec\n"
         "from cryptography.hazmat.primitives import hashes\n"
         "k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), "
         "open(KEYFILE, 'rb').read())\n"
         "sig = open(SIGFILE, 'rb').read()\n")
_VERIFY_FULL = "k.verify(sig, b'payload', ec.ECDSA(hashes.SHA256()))\n"
_VERIFY_NARROW = ("from ebpm.oci.signature import verify_payload, encode_signature\n"
                  "assert verify_payload(b'payload', encode_signature(sig), k)\n")


def floor() -> list[str]:
    """Import costs of the candidates and of what a pull needs."""
    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-floor-"))
    try:
        files = f"KEYFILE = {str(work / 'key')!r}\nSIGFILE = {str(work / 'sig')!r}\n"
        subprocess.run([PYTHON, "-c", files + _KEY], check=True)
        cases = {
            "pass": "pass",
            "pull path": _PULL_PATH,
            "requests": _PULL_PATH + "import requests",
            "urllib3": _PULL_PATH + "import urllib3",
            "http.client": _PULL_PATH + "import http.client",
            "h11": _PULL_PATH + "import h11",
            "own": _PULL_PATH + "import ebpm.oci.http",
            "own+ssl": _PULL_PATH + "import ebpm.oci.http, ssl",
            "ec key": _PULL_PATH + files + _LOAD,
            "ecdsa full": _PULL_PATH + files + _LOAD + _VERIFY_FULL,
            "ecdsa narrow": _PULL_PATH + files + _LOAD + _VERIFY_NARROW,
            "click": "import click",
        }
        env = ebpm_env()
        fns = [partial(run_quiet, [PYTHON, "-c", code], env=env) for code in cases.values()]
        times = alternate_many(fns, FLOOR_ROUNDS)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {name: min(t) * 1000 for name, t in zip(cases, times, strict=True)}

    def over(name: str, ref: str = "pull path") -> str:
        return f"+{med[name] - med[ref]:.1f} ms"

    return [
        f"floor: python -c pass {med['pass']:.1f} ms; ebpm's pull-path modules without HTTP "
        f"and crypto (no CLI) {over('pull path', 'pass')}; click {over('click', 'pass')} "
        f"(best of {FLOOR_ROUNDS})",
        f"HTTP stack, import on top of the pull path: requests {over('requests')}, urllib3 "
        f"alone {over('urllib3')}, http.client (brings ssl, email.parser) "
        f"{over('http.client')}, h11 (brings dataclasses) {over('h11')}, ebpm.oci.http's own "
        f"HTTP/1.1 over a socket (chosen) {over('own')}, the same + ssl (an https registry) "
        f"{over('own+ssl')}",
        f"ECDSA P-256 on top of the pull path: cryptography's EC and hash primitives and the "
        f"key {over('ec key')}; then the check with ec.ECDSA() (imports its OpenSSL backend "
        f"module) {over('ecdsa full', 'ec key')}, without it (chosen) "
        f"{over('ecdsa narrow', 'ec key')}",
    ]


def _cleaner(*dirs: Path) -> Callable[[], None]:
    def clean() -> None:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    return clean


def _large(work: Path, host: str, env: dict[str, str], crane: str | None) -> list[str]:
    sys.path.insert(0, str(ROOT))
    """Big layers: pull time against crane, and ebpm's peak RSS at 20 and 100 MiB."""
    lines = []
    rss: dict[int, int] = {}
    for mib in (1, 20, 100):
        ref = publish(host, f"bench/big{mib}", size=mib << 20)
        run_quiet([EBPM, "sign", ref], env=env)
        clean = _cleaner(Path(env["EBPM_HOME"]), work / "layout")
        clean()
        rss[mib] = peak_rss([EBPM, "pull", ref], env)
        if mib == 20 and crane:
            ours_cmd = [EBPM, "pull", ref]
            peer_cmd = [crane, "pull", "--insecure", "--format=oci", ref, str(work / "layout")]
            ours, peer = alternate_many([partial(run_quiet, ours_cmd, env=env),
                                         partial(run_quiet, peer_cmd)], 5, setup=clean)
            lines.append(ratio_line("cold pull, 20 MiB layer, signed, vs crane", ours, peer,
                                    "crane"))
    grow = (rss[100] - rss[1]) / (1 << 20)
    lines.append(f"ebpm pull peak RSS: 1 MiB layer {rss[1] / (1 << 20):.0f} MiB, 20 MiB layer "
                 f"{rss[20] / (1 << 20):.0f} MiB, 100 MiB layer {rss[100] / (1 << 20):.0f} MiB; "
                 f"growth from 1 to 100 MiB: {grow:.0f} MiB; target flat (< 10 MiB): "
                 f"{'MET' if grow < 10 else 'NOT MET'}")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
