"""The process's wasmtime Engine and its compiled-module cache, keyed by the module's digest."""

from __future__ import annotations

import hashlib
import os
import platform
import threading
from pathlib import Path

from wasmtime import Config, Engine, Module, WasmtimeError

from ebpm import log
from ebpm.errors import WasmError
from ebpm.files import PRIVATE_MODE, atomic_write

__all__ = ["engine", "compile_module", "cache_dir", "CACHE_DIR_NAME"]

CACHE_DIR_NAME = "wasm-cache"

_log = log.get("ebpm.wasm")
_lock = threading.Lock()
_engine: Engine | None = None
_engine_tag = ""


def engine() -> Engine:
    """One Engine per process: epoch interruption on (the hard stop), optimized for speed,
    linear memories that never move (grown in place)."""
    global _engine, _engine_tag
    if _engine is None:
        with _lock:
            if _engine is None:
                config = Config()
                config.epoch_interruption = True
                config.cranelift_opt_level = "speed"
                config.memory_may_move = False  # GuestMemory keeps the base address
                _engine = Engine(config)
                tag = f"wasmtime-{_wasmtime_build()}-{platform.machine()}-epoch-speed-nomove"
                _engine_tag = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return _engine


def _wasmtime_build() -> str:
    """The installed wasmtime's native library, by name, size and mtime: it changes with every
    wasmtime release, and a stat costs microseconds (importlib.metadata.version() takes ~40 ms,
    on the path to a wasm package's first event)."""
    import wasmtime

    root = Path(wasmtime.__file__).parent
    libs = sorted(p for p in root.glob("*/*") if p.name.startswith("_libwasmtime"))
    if not libs:
        from importlib.metadata import version

        return version("wasmtime")
    st = libs[0].stat()
    return f"{libs[0].name}-{st.st_size}-{st.st_mtime_ns}"


def cache_dir() -> Path:
    """Where compiled modules are kept: $EBPM_HOME/wasm-cache (next to the store's blobs)."""
    from ebpm.config import store_home

    return Path(store_home(), CACHE_DIR_NAME)


def compile_module(wasm: bytes, *, cache: Path | None = None, use_cache: bool = True) -> Module:
    """The compiled module for `wasm`: from the cache when there (< 1 ms), else compiled (and
    cached for next time). The cache is keyed by the sha256 of the module bytes and the engine
    build; an unreadable or stale entry is recompiled, an unwritable cache is skipped."""
    eng = engine()
    digest = hashlib.sha256(wasm).hexdigest()
    path = (cache or cache_dir()) / f"{digest}-{_engine_tag}.cwasm"
    if use_cache:
        data = _read_trusted(path)
        if data is not None:
            try:
                return Module.deserialize(eng, data)
            except WasmtimeError as err:
                _log.info("wasm cache: %s: %s; recompiling", path.name, err)
    try:
        module = Module(eng, wasm)
    except WasmtimeError as err:
        raise WasmError(
            f"wasm module sha256:{digest[:12]}: not a valid WebAssembly module: {err}",
            hint="rebuild it with `ebpm build` (clang --target=wasm32-wasi)",
        ) from err
    if use_cache:
        _store(path, bytes(module.serialize()))
    return module


def _read_trusted(path: Path) -> bytes | None:
    """The cached native code at `path`, if only we (or root) could have written it.

    Deserializing runs the file's machine code: under `sudo` the store is the invoking user's,
    so a file that user could have planted or changed must not be loaded by root.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid not in (os.geteuid(), 0) or st.st_mode & 0o022:
            _log.warning("wasm cache: ignoring %s (owner uid %d, mode %o): not written by us",
                         path, st.st_uid, st.st_mode & 0o777)
            return None
        return f.read()


def _store(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data, mode=PRIVATE_MODE)
    except OSError as err:
        _log.info("wasm cache: cannot write %s: %s", path, err)
