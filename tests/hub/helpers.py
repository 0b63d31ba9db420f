"""Helpers for the hub tests: publish synthetic ebpm packages to a real registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ebpm.oci.artifact import Layer, pack
from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1, README_TYPE
from ebpm.oci.reference import Reference
from ebpm.package import ArgSpec, MapSpec, PackageConfig, ProgramSpec

__all__ = ["Published", "publish", "package_config"]


@dataclass(frozen=True)
class Published:
    reference: Reference  # registry/repository:tag@digest
    digest: str


def package_config(
    name: str, version: str = "1.0.0", *, description: str = "", license: str = "GPL-2.0",
    programs: tuple[tuple[str, str, str, str], ...] = (
        ("handle_openat", "tracepoint/syscalls/sys_enter_openat", "tracepoint",
         "syscalls/sys_enter_openat"),),
    dependencies: dict[str, object] | None = None, args: bool = True,
) -> PackageConfig:
    """A package config as `ebpm build` writes it (programs as (name, section, type, attach))."""
    return PackageConfig(
        name=name, version=version, description=description, authors=("Ada Lovelace",),
        license=license, source=f"https://example.org/{name}",
        dependencies=dict(dependencies or {}),
        programs=tuple(ProgramSpec(n, s, t, a) for n, s, t, a in programs),
        maps=(MapSpec("events", "ringbuf", 0, 0, 262144),),
        args=(ArgSpec("targ_pid", "pid", "int", 4, 0, "trace this process id only"),)
        if args else (),
    )


def publish(
    host: str, repository: str, config: PackageConfig, *, readme: str | None = None,
    object_bytes: bytes = b"\x7fELF synthetic object", tag: str | None = None,
    sign_key: str | None = None,
) -> Published:
    """Push a package (config, object, README layer) under its version tag; sign it with the
    key `sign_key` when given."""
    from ebpm.access import registry_for

    layers = [Layer(BPF_OBJECT_TYPE, f"{config.name}.bpf.o", object_bytes)]
    if readme is not None:
        layers.append(Layer(README_TYPE, "README.md", readme.encode()))
    artifact = pack(config.to_json(), layers, annotations={
        "org.opencontainers.image.version": config.version,
        "org.opencontainers.image.description": config.description,
    })
    client = registry_for(host)
    for blob in artifact.blobs:
        client.push_blob(repository, blob.descriptor.digest, blob.data)
    tag = tag or config.version.replace("+", "_")
    client.put_manifest(repository, tag, artifact.manifest_bytes, MANIFEST_V1)
    reference = Reference(host, repository, tag=tag, digest=artifact.digest)
    if sign_key:
        from ebpm.trust.sign import sign

        sign(reference, artifact.digest, sign_key, registry=client)
    return Published(reference, artifact.digest)


def generate_key(name: str, scope: str) -> Path:
    """A signing key in $EBPM_CONFIG, trusted for `scope`; returns the public key's path."""
    from ebpm.trust.keys import generate
    from ebpm.trust.policy import add_trust

    info = generate(name)
    add_trust(scope, info.public_path)
    return info.public_path
