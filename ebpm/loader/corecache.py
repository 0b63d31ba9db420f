"""The CO-RE cache: for each object run on this kernel, the few types of the kernel's BTF its
CO-RE relocations use, so that later loads need not read the whole kernel BTF.

To relocate an object's field accesses (CO-RE), libbpf reads the running kernel's BTF
(/sys/kernel/btf/vmlinux, ~5 MiB) on every load: for a small tool that is most of the load
(opensnoop: 14.6 ms of 15.5 here, the verifier under 1 ms). `bpftool gen min_core_btf` (BTFGen,
as BTFHub and Inspektor Gadget use it) writes just the types those relocations match, and
libbpf relocates against that file (`btf_custom_path`) with the same result. ebpm makes one
after the first load of an object in this boot, in the background (`make_later`), and passes
it to every later load of the same object (`lookup`).

The result must be the one libbpf would find itself. libbpf looks in a kernel module's BTF
only for a type vmlinux lacks, and not at all given a custom BTF, so an object with a
relocation whose type vmlinux lacks (it may be in a module, now or later) gets no file: a
marker says so, and its loads read the kernel's BTF as before. A load that fails with a file
is done again without it, and the file removed (`forget`).

Where: `$EBPM_CORE_CACHE`, default /run/ebpm/core (a tmpfs: gone at reboot), in a directory
per boot (/proc/sys/kernel/random/boot_id: a new kernel is a new boot). Only files owned by
this user and writable by nobody else are used (the types decide what a program reads). An
object read from a file (a `.bpf.o`, a directory built by `ebpm build`, or decoded from an
eunomia package.json) is named by the file's identity: device, inode, size and change time,
as `make` and Python's bytecode cache name a source (no hashing on the way to libbpf's load);
any other by its content's SHA-256.
"""

from __future__ import annotations

import os
import struct

from ebpm.errors import EbpmError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DEFAULT_DIR", "file_identity", "lookup", "make", "make_later", "forget",
           "relocated_types"]

DEFAULT_DIR = "/run/ebpm/core"
VMLINUX = "/sys/kernel/btf/vmlinux"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_NONE_SUFFIX = ".none"  # the marker: this object gets no file on this boot's kernel
_MAX_ENTRIES = 512  # files in a boot's directory before the oldest are removed
_BPFTOOL_TIMEOUT = 10.0  # seconds (a run that ends waits for it)
_BTF_EXT_MAGIC = 0xEB9F
_TYPE_ID_LOCAL = 6  # BPF_CORE_TYPE_ID_LOCAL: the object's own type id, no kernel type


def file_identity(st: os.stat_result) -> str:
    """The name of an object read from a file whose fstat is `st` (see the module's doc)."""
    return f"f{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_ctime_ns:x}"


def _name(obj: bytes, identity: str | None) -> str:
    if identity:
        return identity
    from ebpm.digests import sha256

    return "s" + sha256(obj).hexdigest()


def _boot_dir() -> str | None:
    try:
        with open(_BOOT_ID, "rb") as fh:
            boot = fh.read(64).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not _is_boot_id(boot):
        return None
    return os.path.join(os.environ.get("EBPM_CORE_CACHE") or DEFAULT_DIR, boot)


def _is_boot_id(name: str) -> bool:
    """A boot id's shape (a UUID: 36 characters, hex digits and four dashes)."""
    return len(name) == 36 and name.count("-") == 4 and all(
        c in "0123456789abcdef-" for c in name)


def _regular(mode: int) -> bool:
    return mode & 0o170000 == 0o100000  # (stat.S_ISREG, without importing stat)


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def lookup(obj: bytes, identity: str | None = None) -> str | None:
    """The cached BTF for `obj` on this kernel, to pass to libbpf; None when there is none
    (not made yet, or this object gets none)."""
    directory = _boot_dir()
    if directory is None:
        return None
    path = os.path.join(directory, _name(obj, identity) + ".btf")
    try:
        if not (_ours(os.stat(os.path.dirname(directory))) and _ours(os.stat(directory))):
            return None
        st = os.stat(path)
    except OSError:
        return None
    return path if _ours(st) and _regular(st.st_mode) else None


def forget(path: str) -> None:
    """Remove a cached file a load failed with (the next load reads the kernel's BTF)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def relocated_types(obj: bytes) -> list[tuple[str, int]] | None:
    """(essential name, BTF kind) of the type each CO-RE relocation of `obj` starts from (a
    name's `___flavor` suffix cut, as libbpf matches it); None when it has none to relocate.
    ValueError when .BTF.ext is malformed."""
    from ebpm.loader.btf import Btf
    from ebpm.loader.elf import sections

    found = sections(obj)
    ext = found.get(".BTF.ext")
    if not ext or ".BTF" not in found:
        return None
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", ext, 0)
    if magic != _BTF_EXT_MAGIC or hdr_len < 32:
        return None  # (no core_relo part in this header: nothing relocated)
    relo_off, relo_len = struct.unpack_from("<II", ext, 24)
    if not relo_len:
        return None
    start = hdr_len + relo_off
    end = start + relo_len
    if end > len(ext):
        raise ValueError(".BTF.ext: CO-RE relocations past the section's end")
    (record_size,) = struct.unpack_from("<I", ext, start)
    if record_size < 16:
        raise ValueError(f".BTF.ext: CO-RE record size {record_size}")
    btf = Btf.parse(found[".BTF"])
    out: list[tuple[str, int]] = []
    pos = start + 4
    while pos < end:
        _section, count = struct.unpack_from("<II", ext, pos)
        pos += 8
        if pos + count * record_size > end:
            raise ValueError(".BTF.ext: a section's CO-RE records past the end")
        for i in range(count):
            _insn, type_id, _access, kind = struct.unpack_from("<IIII", ext, pos + i * record_size)
            if kind == _TYPE_ID_LOCAL:
                continue
            t = btf[type_id]
            out.append((t.name.partition("___")[0], t.kind))
        pos += count * record_size
    return out or None


def _complete(made: bytes, wanted: list[tuple[str, int]]) -> bool:
    """Whether the made BTF holds a type for every relocation (else the relocation's type is
    not in vmlinux: libbpf would look in the modules' BTF, which a custom BTF turns off)."""
    from ebpm.loader.btf import Btf, Kind

    btf = Btf.parse(made)
    enums = (Kind.ENUM, Kind.ENUM64)
    for name, kind in wanted:
        if not name:
            return False
        kinds = enums if kind in enums else (kind,)
        if btf.find(name, *kinds) is None:
            return False
    return True


def make(obj: bytes, identity: str | None = None) -> str | None:
    """Make the cached BTF for `obj` on this kernel with bpftool (or the marker that it gets
    none); its path, or None. Quiet: a cache that cannot be made is no error."""
    import contextlib
    import subprocess
    import tempfile

    from ebpm.files import PRIVATE_DIR_MODE, atomic_path, atomic_write

    directory = _boot_dir()
    if directory is None or not os.path.exists(VMLINUX):
        return None
    name = _name(obj, identity)
    path = os.path.join(directory, name + ".btf")
    try:
        wanted = relocated_types(obj)
    except (ValueError, IndexError, struct.error, EbpmError):  # damaged: no cache
        return None
    try:
        os.makedirs(directory, PRIVATE_DIR_MODE, exist_ok=True)
        if not (_ours(os.stat(os.path.dirname(directory))) and _ours(os.stat(directory))):
            return None
        _prune(directory)
        if wanted is None:  # nothing to relocate: libbpf reads no kernel BTF for it anyway
            atomic_write(path.removesuffix(".btf") + _NONE_SUFFIX, b"", durable=False)
            return None
        with tempfile.NamedTemporaryFile(prefix="ebpm-core-", suffix=".bpf.o") as src, \
                atomic_path(path, mode=0o644) as out:
            src.write(obj)
            src.flush()
            subprocess.run(["bpftool", "gen", "min_core_btf", VMLINUX, str(out), src.name],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=_BPFTOOL_TIMEOUT)
            made = out.read_bytes()
            if not _complete(made, wanted):
                raise _Incomplete
    except (_Incomplete, subprocess.CalledProcessError):  # (bpftool refused it: not again)
        with contextlib.suppress(OSError):
            atomic_write(path.removesuffix(".btf") + _NONE_SUFFIX, b"", durable=False)
        return None
    except (OSError, subprocess.SubprocessError, EbpmError):  # no cache, quietly
        return None
    return path


class _Incomplete(Exception):
    pass


def make_later(obj: bytes, identity: str | None = None) -> Callable[[], str | None] | None:
    """`make` in a thread, unless there is a file or a marker for `obj` already; the function
    returned waits for it (the run calls it as it ends, so that the process does not leave
    bpftool's work half done). None when there is nothing to make."""
    directory = _boot_dir()
    if directory is None:
        return None
    stem = os.path.join(directory, _name(obj, identity))
    if os.path.exists(stem + ".btf") or os.path.exists(stem + _NONE_SUFFIX):
        return None
    from ebpm.meanwhile import meanwhile

    return meanwhile(lambda: make(obj, identity))


def _prune(directory: str) -> None:
    """Other boots' directories (nothing else beside them), and the oldest files beyond
    `_MAX_ENTRIES` (or half done by a process that died an hour ago), removed."""
    import shutil
    import time

    parent = os.path.dirname(directory)
    for entry in os.scandir(parent):
        if (entry.is_dir(follow_symlinks=False) and entry.path != directory
                and _is_boot_id(entry.name)):
            shutil.rmtree(entry.path, ignore_errors=True)
    files = sorted(os.scandir(directory), key=lambda e: e.stat(follow_symlinks=False).st_mtime)
    stale = time.time() - 3600
    for i, entry in enumerate(files):
        if i < len(files) - _MAX_ENTRIES or (
                entry.name.endswith(".tmp") and entry.stat().st_mtime < stale):
            try:
                os.unlink(entry.path)
            except OSError:
                pass
