"""Helpers for the signing tests: keys from the openssl CLI, packages in a store."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ebpm.oci.artifact import Artifact, Layer, pack
from ebpm.oci.layout import Store
from ebpm.oci.model import BPF_OBJECT_TYPE, Descriptor
from ebpm.package import PackageConfig


def openssl_key(directory: Path, name: str = "ossl") -> tuple[Path, Path]:
    """An EC P-256 key pair made by the openssl CLI (an independent implementation)."""
    directory.mkdir(parents=True, exist_ok=True)
    key, pub = directory / f"{name}.pem", directory / f"{name}.pub"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out",
                    str(key)], check=True, capture_output=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                   capture_output=True)
    return key, pub


def make_artifact(version: str = "1.0.0", body: bytes = b"\x7fELF fake object") -> Artifact:
    """A small ebpm package (the signing code never looks inside the object)."""
    config = PackageConfig(name="demo", version=version, description="a demo",
                           license="GPL-2.0", authors=("Ada",))
    return pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "demo.bpf.o", body)],
                annotations={"org.opencontainers.image.version": version})


def store_artifact(store: Store, artifact: Artifact, name: str = "") -> None:
    """Put a package's blobs and manifest into the store (as a pull does before enforce) and
    name it `name` (registry/repository:tag; a verification record lives on the index entries
    that name the package)."""
    for blob in artifact.blobs:
        store.write_blob(blob.data, blob.descriptor.digest)
    store.write_blob(artifact.manifest_bytes, artifact.digest)
    if name:
        store.tag(name, Descriptor(artifact.manifest.media_type, artifact.digest,
                                   len(artifact.manifest_bytes)))


def store_signature(store: Store, repository: str, digest: str, manifest: bytes,
                    blobs: dict[str, bytes]) -> str:
    """Put a signature manifest and its blobs into the store under the cosign tag."""
    from ebpm.oci.model import sha256_digest
    from ebpm.oci.signature import signature_tag

    for d, data in blobs.items():
        store.write_blob(data, d)
    sig_digest = store.write_blob(manifest)
    store.tag(f"{repository}:{signature_tag(digest)}",
              Descriptor("application/vnd.oci.image.manifest.v1+json", sig_digest, len(manifest)))
    assert sig_digest == sha256_digest(manifest)
    return sig_digest


def make_package_dir(root: Path, *, version: str = "1.0.0") -> Path:
    """A built package directory as `ebpm build` leaves it (ebpm.toml + .ebpm/)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "ebpm.toml").write_text(
        f'[package]\nname = "demo"\nversion = "{version}"\ndescription = "a demo"\n'
        'license = "GPL-2.0"\nauthors = ["Ada"]\n')
    build = root / ".ebpm"
    build.mkdir(exist_ok=True)
    (build / "demo.bpf.o").write_bytes(b"\x7fELF signed demo")
    config = PackageConfig(name="demo", version=version, description="a demo",
                           license="GPL-2.0", authors=("Ada",))
    (build / "config.json").write_bytes(config.to_json())
    return root
