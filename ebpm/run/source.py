"""Where a package comes from: a file or built directory, an http(s) URL, or a registry
reference (pulled into the store and verified), as a `LocalPackage` ready to load.

Files and downloads are told apart by their bytes (`ebpm.transfer.formats`): a BPF object, a
wasm-bpf module (run as a wasm package without an object), an eunomia package.json. Registry
references are ebpm packages or ecli's OCI wasm images."""

from __future__ import annotations

import errno
import os

from ebpm.errors import ManifestError, NotFoundError, UsageError
from ebpm.package import BUILD_DIR, CONFIG_FILE, MANIFEST_FILE, PackageConfig
from ebpm.record import record, replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.access import RegistryAccess
    from ebpm.loadtime import LoadTime

__all__ = [
    "LocalPackage",
    "StagedPackage",
    "stage",
    "MAX_URL_OBJECT",
    "load_path",
    "fetch_url",
    "resolve_ref",
    "resolve_target",
    "is_local",
    "resolve_locked",
]

MAX_URL_OBJECT = 64 << 20  # bytes: the default of EBPM_MAX_URL_SIZE (ebpm.limits)


@record
class LocalPackage:
    """A package ready to load: the object, its metadata and the optional BTF sidecar."""

    object: bytes | None  # None for a wasm package (its module carries its own object)
    config: PackageConfig
    btf: bytes | None = None
    origin: str = ""
    wasm: bytes | None = None  # the package's own userspace (wasm-bpf), run instead of ours
    format: str = "ebpm"  # ebpm.transfer.formats: bpf-object, wasm, eunomia; "ebpm" packages
    identity: str = ""  # of the file its object was read from (a .bpf.o, a package.json),
    #                     for the CO-RE cache (`corecache.file_identity`)

    def require_object(self) -> bytes:
        """The BPF object, for a native run; a wasm package has none of its own."""
        if self.object is None:
            raise UsageError(f"{self.origin or self.config.name}: a wasm module carries its "
                             "BPF object inside; it runs only as wasm",
                             hint="drop --native")
        return self.object


@record
class StagedPackage:
    """A package directory built by `ebpm build`, read for a native run from the text form of
    what the run needs of its config (`ebpm.loadtime`: read with str methods, so that no
    `json` is imported on the way to the first event), which the build wrote beside
    config.json and which names that config.json's bytes. The rest of config.json (the
    description, the flags' help, the metrics) is parsed only when asked for (`complete()`).
    A directory with a wasm userspace is not staged (it runs that)."""

    object: bytes
    loadtime: LoadTime
    origin: str  # the directory, as given
    identity: str = ""  # the object file's, for the CO-RE cache (`corecache.file_identity`)
    wasm: None = None

    def sidecar(self) -> bytes | None:
        """The BTF sidecar (NAME.btf), if the build wrote one."""
        btf_file = os.path.join(self.origin, BUILD_DIR, f"{self.loadtime.name}.btf")
        return _read(btf_file) if os.path.exists(btf_file) else None

    def complete(self) -> LocalPackage:
        """The whole package, config.json parsed (the one the text form names: `stage`
        checked it)."""
        config = PackageConfig.from_json(_read(os.path.join(self.origin, BUILD_DIR,
                                                            CONFIG_FILE)))
        return LocalPackage(self.object, config, self.sidecar(), self.origin)


def _rebuild(path: str) -> str:
    return f"run `ebpm build {path}` again"


def stage(path: str) -> StagedPackage | None:
    """The directory `path` staged for a native run (see `StagedPackage`); None when it is no
    built directory with a text form of this version, or has a wasm userspace: `load_path`
    reads it whole. A text form that is there but not well formed, or names another
    config.json than the one there (the directory edited since `ebpm build`), is refused
    (ManifestError)."""
    from ebpm import loadtime

    build = os.path.join(path, BUILD_DIR)
    part = loadtime.read(os.path.join(build, loadtime.FILE), hint=_rebuild(path))
    if part is None:
        return None
    stem = os.path.join(build, part.name)
    if os.path.exists(f"{stem}.wasm"):
        return None
    try:
        with open(os.path.join(build, CONFIG_FILE), "rb") as f:
            config_json = f.read(loadtime.MAX_CONFIG + 1)
        obj, identity = _read_identified(f"{stem}.bpf.o")
    except OSError:
        return None  # (load_path says what is missing)
    if not loadtime.describes(part, config_json):
        raise ManifestError(f"{path}: {loadtime.FILE} and config.json disagree (edited since "
                            "`ebpm build`?); nothing was attached", hint=_rebuild(path))
    return StagedPackage(obj, part, path, identity)


def load_path(path: str | os.PathLike[str]) -> LocalPackage:
    """A `.bpf.o` file (with NAME.btf beside it, if any), a package directory built by
    `ebpm build` (DIR/.ebpm/config.json and the object it names), or a directory written by
    `ebpm pull -o DIR` (DIR/config.json and the layers). (os.path, not pathlib: `ebpm run DIR`
    imports no pathlib.)"""
    p = os.fspath(path)
    join, exists = os.path.join, os.path.exists
    if os.path.isdir(p):
        build = join(p, BUILD_DIR)
        if not exists(join(build, CONFIG_FILE)) and exists(join(p, CONFIG_FILE)) and _objects_in(
                p):
            build = p  # what `ebpm pull -o DIR` writes: config.json and the layers by title
        config_file = join(build, CONFIG_FILE)
        if not exists(config_file):
            objects = _objects_in(build)
            if objects:
                return load_path(objects[0])
            hint = f"run `ebpm build {p}` first" if exists(join(p, MANIFEST_FILE)) else (
                "pass a .bpf.o file or a package directory")
            raise NotFoundError(f"{p}: no built package here ({config_file} is missing)",
                                hint=hint)
        config = PackageConfig.from_json(_read(config_file))
        obj_file = join(build, f"{config.name}.bpf.o")
        if not exists(obj_file):
            objects = _objects_in(build)
            if len(objects) != 1:
                raise NotFoundError(f"{build}: no {config.name}.bpf.o",
                                    hint=f"run `ebpm build {p}` again")
            obj_file = objects[0]
        stem = os.path.basename(obj_file).removesuffix(".bpf.o")
        btf_file = join(build, f"{stem}.btf")
        btf = _read(btf_file) if exists(btf_file) else None
        wasm_file = join(build, f"{stem}.wasm")
        wasm = _read(wasm_file) if exists(wasm_file) else None
        return LocalPackage(_read(obj_file), config, btf, p, wasm)
    if not exists(p):
        raise NotFoundError(f"{p}: no such file or directory")
    data, identity = _read_identified(p)
    folder, name = os.path.split(p)
    pkg = _unpacked(data, where=p, stem=os.path.basename(folder) if name == "package.json"
                    else name)
    if pkg.object is None:  # (a wasm module: its guest loads the object it carries)
        return pkg
    from ebpm.transfer.formats import BPF_OBJECT, raw_btf

    # the object is the file's bytes, or (a package.json) decoded from them: named by the file
    pkg = replace(pkg, identity=identity)
    if pkg.format == BPF_OBJECT:
        stem = name.removesuffix(".o").removesuffix(".bpf")
        sidecar = join(folder, f"{stem}.btf")
        if exists(sidecar):
            pkg = replace(pkg, btf=raw_btf(_read(sidecar), where=sidecar))
    return pkg


def _objects_in(folder: str) -> list[str]:
    """The `*.bpf.o` files in `folder`, sorted (none when it is no directory)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names if n.endswith(".bpf.o"))


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _read_identified(path: str) -> tuple[bytes, str]:
    """The file's bytes and the identity of the file read (its fstat: the CO-RE cache names
    an object read from a file by it, `corecache.file_identity`)."""
    from ebpm.loader.corecache import file_identity

    with open(path, "rb") as f:
        return f.read(), file_identity(os.fstat(f.fileno()))


def _unpacked(data: bytes, *, where: str, stem: str) -> LocalPackage:
    """Any runnable blob (BPF object, wasm module, eunomia package.json) as a package."""
    from ebpm.transfer.formats import package_name, unpack

    u = unpack(data, where=where, name=package_name(stem))
    return LocalPackage(u.object, u.config, None, where, u.wasm, u.format)


def fetch_url(url: str, *, allow_unsigned: bool = False,
              access: RegistryAccess | None = None) -> LocalPackage:
    """Download a package file (a `.bpf.o`, a wasm module or a package.json) over http(s),
    through the registry transport's session rules (`access`: CA bundle, insecure hosts,
    offline; default from the environment), at most EBPM_MAX_URL_SIZE bytes; its bytes say
    what it is. A file by URL has no signature: it must be pinned (`URL#sha256=HEX`, checked
    before anything is loaded) or allowed with `allow_unsigned`."""
    import re

    from ebpm.access import get_url
    from ebpm.digests import sha256_digest
    from ebpm.errors import DigestMismatchError, SignatureError
    from ebpm.limits import limits

    url, _, fragment = url.partition("#")
    pin = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else None
    if fragment and (pin is None or not re.fullmatch(r"[0-9a-f]{64}", pin)):
        raise UsageError(f"{url}#{fragment}: a URL's pin is #sha256= and 64 lowercase hex digits",
                         hint="`sha256sum FILE` prints it")
    if pin is None and not allow_unsigned:
        raise SignatureError(
            f"{url}: an object fetched by URL carries no signature",
            hint=f"pin it: give '{url}#sha256=HEX' (HEX from `sha256sum` of the file you "
            "trust), or pass --allow-unsigned",
        )
    data = get_url(url, access, max_bytes=limits().url_size, context=url)
    if pin is not None and sha256_digest(data) != f"sha256:{pin}":
        raise DigestMismatchError(
            f"{url}: got {sha256_digest(data)}, pinned sha256:{pin}",
            hint="the file changed or was tampered with; nothing was loaded",
        )
    parts = url.split("?", 1)[0].rstrip("/").split("/")
    stem = parts[-1]
    if stem == "package.json" and len(parts) > 4:  # ecc's default name: the directory's says more
        stem = parts[-2]
    return _unpacked(data, where=url, stem=stem)


def resolve_ref(ref: str, *, allow_unsigned: bool = False,
                access: RegistryAccess | None = None) -> LocalPackage:
    """A registry reference, pulled into the local store and verified (signature policy).

    A version already in the store is served from there without a network call.
    """
    from ebpm.transfer.pull import pull

    pulled = pull(ref, prefer_cache=True, allow_unsigned=allow_unsigned, access=access)
    if not pulled.object and not pulled.wasm:
        raise NotFoundError(f"{ref}: the package has neither a BPF object nor a wasm module")
    return LocalPackage(pulled.object, pulled.config, pulled.btf, ref, pulled.wasm)


def shadowing_path(target: str) -> str | None:
    """When `target` could name a registry package but a local file or directory of that name
    wins (`ebpm run opensnoop` beside ./opensnoop), the registry reference it shadows."""
    # (no reference starts with "." or "/": `.` and `..` are paths, never parsed as one)
    if target.startswith((".", "/", "http://", "https://")) or not _exists(target):
        return None
    if target.endswith((".o", ".wasm", ".json")):  # always a path (resolve_target)
        return None
    from ebpm.access import parse_reference
    from ebpm.errors import EbpmError

    try:
        return str(parse_reference(target))
    except EbpmError:
        return None


def is_local(target: str) -> bool:
    """Whether TARGET names a file or directory (not an http(s) URL, nor a registry reference):
    one that exists, an explicit path, or a file name by its suffix."""
    if target.startswith(("http://", "https://")):
        return False
    return _exists(target) or target.startswith(("/", "./", "../")) or target.endswith(
        (".o", ".wasm", ".json"))


def _exists(path: str) -> bool:
    """As pathlib's `exists()`: False for a missing path; an error such as a name too long for
    the file system is raised (and reported as such)."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP):
            return False
        raise
    except ValueError:  # an embedded NUL
        return False
    return True


def resolve_target(target: str, *, allow_unsigned: bool = False,
                   access: RegistryAccess | None = None) -> LocalPackage:
    """PATH (file or directory), http(s) URL, or registry REF, in that order."""
    if target.startswith(("http://", "https://")):
        return fetch_url(target, allow_unsigned=allow_unsigned, access=access)
    if is_local(target):
        return load_path(target)
    return resolve_locked(target, allow_unsigned=allow_unsigned, access=access) or resolve_ref(
        target, allow_unsigned=allow_unsigned, access=access)


def resolve_locked(name: str, *, allow_unsigned: bool = False,
                   access: RegistryAccess | None = None) -> LocalPackage | None:
    """Inside a project (an ebpm.lock here or above), NAME of a locked package is its locked
    version: by digest from the registry or store, or the store's build of a git commit."""
    from pathlib import Path

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
