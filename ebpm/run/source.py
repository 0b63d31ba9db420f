"""Where a package comes from: a local object or built directory, an http(s) URL, or a registry
reference (pulled into the store and verified), as a `LocalPackage` ready to load."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ebpm.errors import NotFoundError, UsageError
from ebpm.loader.elf import EM_BPF
from ebpm.package import BUILD_DIR, CONFIG_FILE, MANIFEST_FILE, PackageConfig

if TYPE_CHECKING:
    from ebpm.access import RegistryAccess

__all__ = [
    "LocalPackage",
    "MAX_URL_OBJECT",
    "load_path",
    "fetch_url",
    "resolve_ref",
    "resolve_target",
    "resolve_locked",
    "raw_btf",
]

MAX_URL_OBJECT = 64 << 20  # bytes: the default of EBPM_MAX_URL_SIZE (ebpm.limits)


@dataclass(frozen=True)
class LocalPackage:
    """A package ready to load: the object, its metadata and the optional BTF sidecar."""

    object: bytes
    config: PackageConfig
    btf: bytes | None = None
    origin: str = ""
    wasm: bytes | None = None  # the package's own userspace (wasm-bpf), run instead of ours


def _name_from(stem: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    return name or "package"


def _bare_config(name: str) -> PackageConfig:
    return PackageConfig(name=_name_from(name), version="0.0.0")


def load_path(path: str | Path) -> LocalPackage:
    """A `.bpf.o` file (with NAME.btf beside it, if any) or a package directory built by
    `ebpm build` (DIR/.ebpm/config.json and the object it names)."""
    p = Path(path)
    if p.is_dir():
        build = p / BUILD_DIR
        config_file = build / CONFIG_FILE
        if not config_file.exists():
            objects = sorted(build.glob("*.bpf.o")) if build.is_dir() else []
            if objects:
                return load_path(objects[0])
            hint = f"run `ebpm build {p}` first" if (p / MANIFEST_FILE).exists() else (
                "pass a .bpf.o file or a package directory")
            raise NotFoundError(f"{p}: no built package here ({config_file} is missing)",
                                hint=hint)
        config = PackageConfig.from_json(config_file.read_bytes())
        obj_file = build / f"{config.name}.bpf.o"
        if not obj_file.exists():
            objects = sorted(build.glob("*.bpf.o"))
            if len(objects) != 1:
                raise NotFoundError(f"{build}: no {config.name}.bpf.o",
                                    hint=f"run `ebpm build {p}` again")
            obj_file = objects[0]
        stem = obj_file.name.removesuffix(".bpf.o")
        btf_file = build / f"{stem}.btf"
        btf = btf_file.read_bytes() if btf_file.exists() else None
        wasm_file = build / f"{stem}.wasm"
        wasm = wasm_file.read_bytes() if wasm_file.exists() else None
        return LocalPackage(obj_file.read_bytes(), config, btf, str(p), wasm)
    if not p.exists():
        raise NotFoundError(f"{p}: no such file or directory")
    data = p.read_bytes()
    _require_elf(data, str(p))
    stem = p.name.removesuffix(".o").removesuffix(".bpf")
    sidecar = p.with_name(f"{stem}.btf")
    btf = raw_btf(sidecar.read_bytes(), where=str(sidecar)) if sidecar.exists() else None
    return LocalPackage(data, _bare_config(stem), btf, str(p))


def _require_elf(data: bytes, where: str) -> None:
    if data[:4] != b"\x7fELF":
        raise UsageError(f"{where}: not a BPF object (no ELF header)",
                         hint="pass a .bpf.o compiled with clang -target bpf")
    machine = int.from_bytes(data[18:20], "little" if data[5:6] == b"\x01" else "big")
    if machine != EM_BPF:
        raise UsageError(f"{where}: an ELF file for machine {machine}, not a BPF object",
                         hint="pass a .bpf.o compiled with clang -target bpf")


def fetch_url(url: str, *, allow_unsigned: bool = False,
              access: RegistryAccess | None = None) -> LocalPackage:
    """Download a `.bpf.o` over http(s), through the registry transport's session rules
    (`access`: CA bundle, insecure hosts, offline; default from the environment), at most
    EBPM_MAX_URL_SIZE bytes. An object by URL has no signature: it must be pinned
    (`URL#sha256=HEX`, checked before anything is loaded) or allowed with `allow_unsigned`."""
    from ebpm.access import get_url
    from ebpm.errors import DigestMismatchError, SignatureError
    from ebpm.limits import limits
    from ebpm.oci.model import sha256_digest

    url, _, fragment = url.partition("#")
    pin = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
    if fragment and (pin is None or not re.fullmatch(r"[0-9a-f]{64}", pin)):
        raise UsageError(f"{url}#{fragment}: a URL's pin is #sha256= and 64 lowercase hex digits",
                         hint="`sha256sum FILE` prints it")
    if pin is None and not allow_unsigned:
        raise SignatureError(
            f"{url}: an object fetched by URL carries no signature",
            hint=f"pin it: `ebpm run '{url}#sha256=HEX'` (HEX from `sha256sum` of the file you "
            "trust), or pass --allow-unsigned",
        )
    data = get_url(url, access, max_bytes=limits().url_size, context=url)
    if pin is not None and sha256_digest(data) != f"sha256:{pin}":
        raise DigestMismatchError(
            f"{url}: got {sha256_digest(data)}, pinned sha256:{pin}",
            hint="the file changed or was tampered with; nothing was loaded",
        )
    _require_elf(data, url)
    stem = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    stem = stem.removesuffix(".o").removesuffix(".bpf")
    return LocalPackage(data, _bare_config(stem), None, url)


def resolve_ref(ref: str, *, allow_unsigned: bool = False,
                access: RegistryAccess | None = None) -> LocalPackage:
    """A registry reference, pulled into the local store and verified (signature policy).

    A version already in the store is served from there without a network call.
    """
    from ebpm.transfer.pull import pull

    pulled = pull(ref, prefer_cache=True, allow_unsigned=allow_unsigned, access=access)
    if not pulled.object:
        raise NotFoundError(f"{ref}: the package has no BPF object layer")
    return LocalPackage(pulled.object, pulled.config, pulled.btf, ref, pulled.wasm)


def resolve_target(target: str, *, allow_unsigned: bool = False,
                   access: RegistryAccess | None = None) -> LocalPackage:
    """PATH (file or directory), http(s) URL, or registry REF, in that order."""
    if target.startswith(("http://", "https://")):
        return fetch_url(target, allow_unsigned=allow_unsigned, access=access)
    p = Path(target)
    if p.exists() or target.startswith(("/", "./", "../")) or target.endswith(".o"):
        return load_path(p)
    return resolve_locked(target, allow_unsigned=allow_unsigned, access=access) or resolve_ref(
        target, allow_unsigned=allow_unsigned, access=access)


def resolve_locked(name: str, *, allow_unsigned: bool = False,
                   access: RegistryAccess | None = None) -> LocalPackage | None:
    """Inside a project (an ebpm.lock here or above), NAME of a locked package is its locked
    version: by digest from the registry or store, or the store's build of a git commit."""
    from ebpm.deps.locked import find_locked, read_built

    found = find_locked(name, Path.cwd())
    if found is None:
        return None
    if found.reference:
        pkg = resolve_ref(found.reference, allow_unsigned=allow_unsigned, access=access)
        return LocalPackage(pkg.object, pkg.config, pkg.btf, found.origin, pkg.wasm)
    config, obj, btf, wasm = read_built(found.entry)
    assert isinstance(config, PackageConfig)
    return LocalPackage(obj, config, btf, found.origin, wasm)


def raw_btf(data: bytes, *, where: str = "BTF") -> bytes:
    """Raw BTF from either a raw blob or an ELF object compiled with -g (its .BTF section)."""
    from ebpm.loader.elf import is_elf, sections

    if not is_elf(data):
        return data
    section = sections(data).get(".BTF")
    if section is None:
        raise UsageError(f"{where}: the object has no .BTF section",
                         hint="compile it with clang -g -target bpf")
    return section
