"""Verifying a cached, signed package: `ebpm --offline verify REF` against `python -c pass`,
and in-process, the policy check from a verification record against a full signature check."""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import EBPM, PYTHON, alternate, ratio_line, run_quiet

ROUNDS = 10
REPO = "localhost:5000/bench/verify"


def _setup(root: Path) -> tuple[dict[str, str], str, str]:
    """A store holding one package signed by a trusted key (built without any registry)."""
    from ebpm.oci import signature as sig
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.layout import Store
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1, Descriptor, sha256_digest
    from ebpm.package import PackageConfig
    from ebpm.trust import keys
    from ebpm.trust import policy as trust

    env = {"EBPM_HOME": str(root / "home"), "EBPM_CONFIG": str(root / "config"),
           "EBPM_SYSTEM_CONFIG": str(root / "system")}
    os.environ.update(env)
    info = keys.generate("bench")
    trust.add_trust("localhost:5000/**", info.public_path)
    config = PackageConfig(name="verify", version="1.0.0", description="bench",
                           license="GPL-2.0", authors=("bench",))
    artifact = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "verify.bpf.o",
                                             b"\x7fELF" + os.urandom(200_000))],
                    annotations={"org.opencontainers.image.version": "1.0.0"})
    store = Store()
    for blob in artifact.blobs:
        store.write_blob(blob.data, blob.descriptor.digest)
    store.write_blob(artifact.manifest_bytes, artifact.digest)
    payload = sig.make_payload(REPO, artifact.digest)
    data, cfg, _ = sig.add_signature(
        None, payload, sig.sign_payload(payload, keys.load_private("bench")))
    store.write_blob(payload)
    store.write_blob(cfg)
    store.write_blob(data)
    store.tag(f"{REPO}:{sig.signature_tag(artifact.digest)}",
              Descriptor(MANIFEST_V1, sha256_digest(data), len(data)))
    store.tag(f"{REPO}:1.0.0", Descriptor(MANIFEST_V1, artifact.digest,
                                          len(artifact.manifest_bytes)))
    return env, f"{REPO}:1.0.0", artifact.digest


def _in_process(digest: str) -> tuple[list[float], list[float]]:
    from ebpm.oci.layout import Store
    from ebpm.oci.reference import parse
    from ebpm.trust.verification import enforce

    store, ref = Store(), parse(REPO)
    enforce(store, ref, digest)
    cached, full = [], []
    for _ in range(ROUNDS * 5):
        start = time.perf_counter()
        assert enforce(store, ref, digest).cached
        cached.append(time.perf_counter() - start)
        start = time.perf_counter()
        assert not enforce(store, ref, digest, fresh=True).cached
        full.append(time.perf_counter() - start)
    return cached, full


def main() -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="ebpm-bench-verify-"))
    saved = dict(os.environ)
    try:
        env, ref, digest = _setup(root)
        child_env = dict(os.environ, **env, EBPM_OFFLINE="1")

        def ours() -> None:
            run_quiet([EBPM, "verify", ref], env=child_env)

        def bare() -> None:
            run_quiet([PYTHON, "-c", "pass"])

        ours()
        bare()
        t_ours, t_bare = alternate(ours, bare, ROUNDS)
        cached, full = _in_process(digest)
        mc, mf = statistics.median(cached), statistics.median(full)
        return [
            ratio_line("`ebpm --offline verify REF` of a cached signed package vs "
                       "`python -c pass`", t_ours, t_bare, "python"),
            f"in-process enforce(): verification record {mc * 1e3:.2f} ms, full signature "
            f"check {mf * 1e3:.2f} ms, ratio {mc / mf:.2f}x (medians of {len(cached)})",
        ]
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
