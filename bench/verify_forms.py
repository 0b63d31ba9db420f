"""Verifying a cached package by signature form: cosign's legacy `.sig` tag, an OCI 1.1
referrer (cosign's referrer manifest), a keyless Sigstore bundle (checked with `sigstore`
against a pinned trusted root) and cosign's legacy keyless `.sig` layer, each against
`python -c pass`.

Per form: `ebpm --offline verify --fresh REF` (checks the signatures again: the first
verification's cost), `ebpm --offline verify REF` (re-hashes the package, takes the signatures
from the verification record while policy and signatures are unchanged) and `ebpm --offline pull
REF` (the record alone: the path `run` takes). The keyless bundle comes from a private
Sigstore instance (tests/signing/sigstore_pki.py): the verification work is the same as for a
public one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.common import EBPM, PYTHON, alternate, ratio_line, run_quiet, version_of

ROUNDS = 7
REPO = "localhost:5000/bench/forms"


def _setup(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """One store with three packages, signed in the three forms; returns (env, form -> ref)."""
    from ebpm.oci import signature as sig
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.layout import Store
    from ebpm.oci.model import (
        BPF_OBJECT_TYPE,
        COSIGN_SIMPLESIGNING_TYPE,
        EMPTY_CONFIG_TYPE,
        INDEX_V1,
        MANIFEST_V1,
        Descriptor,
        Manifest,
        sha256_digest,
    )
    from ebpm.oci.referrers import COSIGN_SIGNATURE_ARTIFACT, build_index, referrers_tag
    from ebpm.package import PackageConfig
    from ebpm.trust import keys
    from ebpm.trust import policy as trust
    from tests.signing.sigstore_pki import BUNDLE_V03, PrivateSigstore

    env = {"EBPM_HOME": str(root / "home"), "EBPM_CONFIG": str(root / "config"),
           "EBPM_SYSTEM_CONFIG": str(root / "system")}
    os.environ.update(env)
    info = keys.generate("bench")
    sigstore = PrivateSigstore()
    sigstore.write_root(root / "config" / "sigstore" / "trusted_root.json")
    trust.add_trust(f"{REPO}/legacy", info.public_path)
    trust.add_trust(f"{REPO}/referrer", info.public_path)
    policy = Path(trust.user_policy_path())
    for scope, extra in (("keyless", ""), ("keyless-legacy", "legacy_keyless = true\n")):
        policy.write_text(policy.read_text() + f'\n[[trust]]\nscope = "{REPO}/{scope}"\n'
                          "keyless = [{ identity = 'ci@example.com', issuer = "
                          "'https://issuer.example' }]\n" + extra)
    store = Store()
    refs = {}
    for form in ("legacy", "referrer", "keyless", "keyless-legacy"):
        name = f"{REPO}/{form}"
        config = PackageConfig(name=form, version="1.0.0", description="bench",
                               license="GPL-2.0", authors=("bench",))
        artifact = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, f"{form}.bpf.o",
                                                 b"\x7fELF" + os.urandom(200_000))],
                        annotations={"org.opencontainers.image.version": "1.0.0"})
        for blob in artifact.blobs:
            store.write_blob(blob.data, blob.descriptor.digest)
        store.write_blob(artifact.manifest_bytes, artifact.digest)
        subject = Descriptor(MANIFEST_V1, artifact.digest, len(artifact.manifest_bytes))
        if form == "keyless":
            bundle = sigstore.message_bundle(artifact.manifest_bytes, "ci@example.com",
                                             "https://issuer.example")
            empty = b"{}"
            manifest = Manifest(
                config=Descriptor(EMPTY_CONFIG_TYPE, sha256_digest(empty), len(empty)),
                layers=(Descriptor(BUNDLE_V03, sha256_digest(bundle), len(bundle)),),
                artifact_type=BUNDLE_V03, subject=subject).to_bytes()
            blobs, kind = [empty, bundle], BUNDLE_V03
        else:
            payload = sig.make_payload(name, artifact.digest)
            annotations: dict[str, str] = {sig.SIGNATURE_ANNOTATION: sig.sign_payload(
                payload, keys.load_private("bench"))}
            if form == "keyless-legacy":
                signature, certs = sigstore.cosign_legacy(payload, "ci@example.com",
                                                          "https://issuer.example")
                annotations = {sig.SIGNATURE_ANNOTATION: signature, **certs}
            layer = Descriptor(COSIGN_SIMPLESIGNING_TYPE, sha256_digest(payload), len(payload),
                               annotations=annotations)
            if form in ("legacy", "keyless-legacy"):
                manifest, cfg = sig.build_manifest((layer,))
            else:
                manifest, cfg = sig.build_referrer(subject, (layer,))
            blobs, kind = [payload, cfg], COSIGN_SIGNATURE_ARTIFACT
        for data in blobs:
            store.write_blob(data)
        store.write_blob(manifest)
        desc = Descriptor(MANIFEST_V1, sha256_digest(manifest), len(manifest))
        if form in ("legacy", "keyless-legacy"):
            store.tag(f"{name}:{sig.signature_tag(artifact.digest)}", desc)
        else:
            index = build_index([Descriptor(MANIFEST_V1, desc.digest, desc.size,
                                            artifact_type=kind)])
            store.write_blob(index)
            store.tag(f"{name}:{referrers_tag(artifact.digest)}",
                      Descriptor(INDEX_V1, sha256_digest(index), len(index)))
        store.tag(f"{name}:1.0.0", subject)
        refs[form] = f"{name}:1.0.0"
    return env, refs


def main() -> list[str]:
    root = Path(tempfile.mkdtemp(prefix="ebpm-bench-forms-"))
    saved = dict(os.environ)
    lines = []
    try:
        env, refs = _setup(root)
        child_env = dict(os.environ, **env, EBPM_OFFLINE="1")

        peer = version_of((PYTHON, "--version"))  # the peer and its version, e.g. Python 3.11.2

        def bare() -> None:
            run_quiet([PYTHON, "-c", "pass"])

        for form, ref in refs.items():
            for command in ("verify --fresh", "verify", "pull"):
                def ours(command: str = command, ref: str = ref) -> None:
                    run_quiet([EBPM, *command.split(), ref], env=child_env)

                ours()
                bare()
                t_ours, t_bare = alternate(ours, bare, ROUNDS)
                lines.append(ratio_line(f"`ebpm --offline {command}` {form} vs "
                                        "`python -c pass`", t_ours, t_bare, peer))
        return lines
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(root, ignore_errors=True)
