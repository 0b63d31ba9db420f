"""The run use case: find a package (path, URL or registry reference), load it and stream results.

`run(target, args=[...])` resolves TARGET to object bytes + metadata (`resolve_target`), then
`run_object` checks the environment, loads and attaches through `ebpm.loader.session.Session`,
and hands decoded events and map snapshots to a `Reporter` until `duration`, `max_events`,
Ctrl-C or SIGTERM; everything is detached before it returns.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ebpm.errors import LoadError, NotFoundError, OfflineError, UsageError
from ebpm.package import BUILD_DIR, CONFIG_FILE, MANIFEST_FILE, PackageConfig

__all__ = [
    "LocalPackage",
    "Reporter",
    "RunSummary",
    "resolve_target",
    "resolve_ref",
    "load_path",
    "fetch_url",
    "complete_config",
    "raw_btf",
    "package_help",
    "run_object",
    "run_wasm",
    "run",
]

DEFAULT_INTERVAL = 1.0  # seconds between map snapshots of packages without an event stream


@dataclass(frozen=True)
class LocalPackage:
    """A package ready to load: the object, its metadata and the optional BTF sidecar."""

    object: bytes
    config: PackageConfig
    btf: bytes | None = None
    origin: str = ""
    wasm: bytes | None = None  # the package's own userspace (wasm-bpf), run instead of ours


class Reporter:
    """Receives what a run produces; every hook defaults to doing nothing."""

    def started(self, session: Any) -> None:
        """The package is loaded and attached (`session`: ebpm.loader.session.Session)."""

    def event(self, event: dict[str, Any]) -> None:
        """One decoded event."""

    def maps(self, snapshots: list[Any], final: bool) -> None:
        """Result maps (ebpm.loader.session.MapSnapshot), every interval and once at the end."""


@dataclass(frozen=True)
class RunSummary:
    package: str
    events: int
    lost: int
    seconds: float
    stopped_by: str  # "duration", "max-events", "signal"
    attached: tuple[str, ...]
    dropped: tuple[Any, ...]  # ebpm.loader.session.Dropped


# -- finding the package ----------------------------------------------------------------------


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


_EM_BPF = 247


def _require_elf(data: bytes, where: str) -> None:
    if data[:4] != b"\x7fELF":
        raise UsageError(f"{where}: not a BPF object (no ELF header)",
                         hint="pass a .bpf.o compiled with clang -target bpf")
    machine = int.from_bytes(data[18:20], "little" if data[5:6] == b"\x01" else "big")
    if machine != _EM_BPF:
        raise UsageError(f"{where}: an ELF file for machine {machine}, not a BPF object",
                         hint="pass a .bpf.o compiled with clang -target bpf")


def fetch_url(url: str, *, timeout: float = 30.0) -> LocalPackage:
    """Download a `.bpf.o` over http(s)."""
    from ebpm import config as settings

    if settings.offline():
        raise OfflineError(f"{url}: offline mode makes no network call",
                           hint="download it and pass the file path")
    import requests

    try:
        resp = requests.get(url, timeout=timeout)
    except requests.RequestException as err:
        from ebpm.errors import UnreachableError

        raise UnreachableError(f"{url}: {err.__class__.__name__}",
                               hint="check the URL and the network") from err
    if resp.status_code != 200:
        raise NotFoundError(f"{url}: HTTP {resp.status_code}", status=resp.status_code)
    _require_elf(resp.content, url)
    stem = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    stem = stem.removesuffix(".o").removesuffix(".bpf")
    return LocalPackage(resp.content, _bare_config(stem), None, url)


def resolve_ref(ref: str, *, allow_unsigned: bool = False) -> LocalPackage:
    """A registry reference, pulled into the local store and verified (signature policy).

    A version already in the store is served from there without a network call.
    """
    from ebpm.transfer.pull import pull

    pulled = pull(ref, prefer_cache=True, allow_unsigned=allow_unsigned)
    if not pulled.object:
        raise NotFoundError(f"{ref}: the package has no BPF object layer")
    return LocalPackage(pulled.object, pulled.config, pulled.btf, ref, pulled.wasm)


def resolve_target(target: str, *, allow_unsigned: bool = False) -> LocalPackage:
    """PATH (file or directory), http(s) URL, or registry REF, in that order."""
    if target.startswith(("http://", "https://")):
        return fetch_url(target)
    p = Path(target)
    if p.exists() or target.startswith(("/", "./", "../")) or target.endswith(".o"):
        return load_path(p)
    return resolve_ref(target, allow_unsigned=allow_unsigned)


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


def complete_config(pkg: LocalPackage) -> PackageConfig:
    """Fill programs, maps, events and args from the object when the metadata lacks them."""
    config = pkg.config
    if config.programs:
        return config
    from ebpm.build.metadata import extract

    derived = extract(pkg.object, sidecar_btf=pkg.btf, name=config.name, version=config.version)
    return replace(
        config,
        programs=derived.programs,
        maps=config.maps or derived.maps,
        events=config.events or derived.events,
        args=config.args or derived.args,
    )


def package_help(pkg: LocalPackage) -> str:
    from ebpm.loader.args import help_text

    config = complete_config(pkg)
    text = help_text(config.name, config.args)
    if config.description:
        text = f"{config.name}: {config.description}\n\n{text}"
    return text


# -- running ----------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def _rodata_for(pkg: LocalPackage, config: PackageConfig, argv: Sequence[str]) -> bytes | None:
    from ebpm.loader.args import parse_args, patch_rodata
    from ebpm.loader.btf import Btf
    from ebpm.loader.elf import sections

    parsed = parse_args(config.args, argv)
    if not parsed.values:
        return None
    rodata = sections(pkg.object).get(".rodata")
    if rodata is None:
        raise UsageError(f"{config.name}: the object has no .rodata to set flags in")
    offsets = {v.name: v.offset for v in Btf.parse(pkg.object).datasec(".rodata")}
    return patch_rodata(rodata, config.args, parsed, offsets)


def run_object(
    obj: bytes,
    config: PackageConfig,
    *,
    btf: bytes | None = None,
    args: Sequence[str] = (),
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    attach: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Load `obj` with `config`, stream events/maps to `reporter`, detach everything at the end.

    Result maps (counters, histograms) are reported every `interval` seconds and emptied, like
    libbpf-tools do, then once more at the end with the counts since the last report.

    Stops after `duration` seconds, `max_events` events, when `stop` is set, or on Ctrl-C or
    SIGTERM. Raises LoadError (with the verifier log tail) when the kernel refuses it.
    """
    from ebpm.loader.environment import check_environment, check_requirements
    from ebpm.loader.session import Session

    reporter = reporter or Reporter()
    pkg = LocalPackage(obj, config, btf)
    config = complete_config(pkg)
    rodata = _rodata_for(pkg, config, args)
    check_requirements(config.requirements)
    check_environment(need_btf=config.requirements.btf)
    started = time.monotonic()
    deadline = started + duration if duration is not None else None
    restore = _install_sigterm()
    stopped_by = "signal"
    session = None
    try:
        session = Session.start(obj, config, sidecar_btf=btf, rodata=rodata, attach=attach)
        count = 0
        emit = reporter.event

        def on_event(event: dict[str, Any]) -> None:
            nonlocal count
            emit(event)
            count += 1
            if max_events is not None and count >= max_events:
                raise _Stop

        streams = session.open_events(on_event)
        reporter.started(session)
        if interval is None and not streams:
            interval = DEFAULT_INTERVAL
        next_snapshot = time.monotonic() + interval if interval else None
        stopped_by = "max-events" if max_events is not None and max_events <= 0 else ""
        while not stopped_by:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                stopped_by = "duration"
                break
            if stop is not None and stop.is_set():
                stopped_by = "stopped"
                break
            wait = 100.0
            if deadline is not None:
                wait = min(wait, (deadline - now) * 1000)
            if next_snapshot is not None:
                wait = min(wait, max(0.0, (next_snapshot - now) * 1000))
            try:
                if streams:
                    session.poll(max(0, int(wait)))
                else:
                    time.sleep(max(0.0, wait / 1000))
            except _Stop:
                stopped_by = "max-events"
                break
            now = time.monotonic()
            if next_snapshot is not None and now >= next_snapshot:
                # the last interval before the deadline is the final snapshot's
                if deadline is None or now < deadline - 0.05:
                    reporter.maps(session.snapshot_maps(clear=True), False)
                next_snapshot += interval or DEFAULT_INTERVAL
    except KeyboardInterrupt:
        stopped_by = "signal"
    finally:
        restore()
        if session is not None:
            try:
                if session.result_maps:
                    reporter.maps(session.snapshot_maps(), True)
            finally:
                session.close()
    return RunSummary(
        package=config.name,
        events=session.events_seen if session else 0,
        lost=session.lost if session else 0,
        seconds=time.monotonic() - started,
        stopped_by=stopped_by or "signal",
        attached=session.attached if session else (),
        dropped=session.dropped if session else (),
    )


def run_wasm(
    pkg: LocalPackage, *, args: Sequence[str] = (), duration: float | None = None,
    allow_types: Sequence[str] = ("tracing",), stop: threading.Event | None = None,
) -> int:
    """Run the package's WebAssembly userspace (it loads the BPF object itself); its status."""
    if pkg.wasm is None:
        raise UsageError(f"{pkg.config.name}: the package has no WebAssembly userspace")
    from ebpm.loader.environment import check_environment, check_requirements
    from ebpm.loader.wasm import run_module

    check_requirements(pkg.config.requirements)
    check_environment(need_btf=pkg.config.requirements.btf)
    return int(run_module(pkg.wasm, args=list(args), name=pkg.config.name,
                          allow_types=tuple(allow_types), duration=duration, stop=stop))


def _install_sigterm() -> Any:
    """SIGTERM stops a run like Ctrl-C does (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    return restore


def run(
    target: str,
    *,
    args: Sequence[str] = (),
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    attach: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
    allow_unsigned: bool = False,
) -> RunSummary:
    """Run TARGET (a path, URL or registry reference): see `run_object`."""
    pkg = resolve_target(target, allow_unsigned=allow_unsigned)
    try:
        return run_object(
            pkg.object, pkg.config, btf=pkg.btf, args=args, duration=duration,
            max_events=max_events, interval=interval, attach=attach, reporter=reporter,
            stop=stop,
        )
    except LoadError as err:
        if pkg.origin and pkg.origin not in err.message:
            err.message = f"{pkg.origin}: {err.message}"
            err.args = (err.message,)
        raise
