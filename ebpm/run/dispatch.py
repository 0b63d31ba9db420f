"""The run use case end to end: TARGET to a package, then its wasm userspace or the native run."""

from __future__ import annotations

from ebpm.errors import LoadError, UsageError
from ebpm.record import replace
from ebpm.run.source import LocalPackage, StagedPackage, is_local, resolve_target, stage

TYPE_CHECKING = False
if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

    from ebpm.access import RegistryAccess
    from ebpm.run.native import Launch
    from ebpm.run.sink import EventSink, RunSummary

__all__ = ["parse_attach", "open_target", "open_for_run", "help_for", "launch", "run_package",
           "run"]


def parse_attach(items: Iterable[str]) -> dict[str, str]:
    """`--attach PROG=TARGET` options as {program: target} (targets are checked at attach)."""
    targets: dict[str, str] = {}
    for item in items:
        prog, eq, where = item.partition("=")
        if not eq or not prog or not where:
            raise UsageError(f"--attach {item!r}: expected PROG=TARGET")
        targets[prog] = where
    return targets


def open_target(
    target: str, *, allow_unsigned: bool = False, btf: str | Path | None = None,
    access: RegistryAccess | None = None,
) -> LocalPackage:
    """TARGET (path, URL or registry reference) as a package; `btf` (a raw .btf or an object
    compiled with -g) replaces its BTF sidecar for decoding events; `access`: how registries
    and URLs are reached (default: from the environment)."""
    pkg = resolve_target(target, allow_unsigned=allow_unsigned, access=access)
    if btf:
        from ebpm.transfer.formats import raw_btf

        with open(btf, "rb") as f:
            data = raw_btf(f.read(), where=str(btf))
        from ebpm.errors import LoadError, UsageError
        from ebpm.loader.btf import Btf

        try:  # (refused now, naming the file, not as "BTF: ..." once the load has begun)
            Btf.parse(data, where=str(btf))
        except LoadError as err:
            raise UsageError(f"--btf {btf}: not valid BTF: "
                             f"{err.message.removeprefix(f'{btf}: ')}",
                             hint="give a raw .btf file, or a BPF object compiled with "
                             "clang -g") from err
        pkg = replace(pkg, btf=data)
    return pkg


def open_for_run(
    target: str, *, args: Sequence[str] = (), allow_unsigned: bool = False,
    btf: str | Path | None = None, access: RegistryAccess | None = None,
) -> LocalPackage | StagedPackage:
    """`open_target` for a run that starts libbpf's load as soon as it can (`launch`): a
    directory built by `ebpm build` is staged, its load started from the load-time part of its
    config (`StagedPackage`), unless `btf` replaces its sidecar or `args` ask for the flags'
    help (config.json has it)."""
    from ebpm.loader.args import wants_help

    if btf is None and not wants_help(list(args)) and is_local(target):
        staged = stage(target)
        if staged is not None:
            return staged
    return open_target(target, allow_unsigned=allow_unsigned, btf=btf, access=access)


def _runs_wasm(pkg: LocalPackage | StagedPackage, native: bool) -> bool:
    return pkg.wasm is not None and not native


def help_for(pkg: LocalPackage | StagedPackage, args: Sequence[str], *,
             native: bool = False) -> str | None:
    """The package's flag listing when `args` ask for it (`-h`) on a native run; None otherwise
    (a wasm userspace receives `-h` itself)."""
    from ebpm.loader.args import wants_help

    if _runs_wasm(pkg, native) or not wants_help(list(args)):
        return None
    from ebpm.run.native import package_help

    return package_help(pkg.complete() if isinstance(pkg, StagedPackage) else pkg)


class _WasmLaunch:
    """A package's wasm userspace, to run (it loads its BPF object itself: nothing starts
    before `run`)."""

    def __init__(self, pkg: LocalPackage, args: Sequence[str], allow_types: Sequence[str]):
        self.pkg, self.args, self.allow_types = pkg, args, allow_types
        self.config = pkg.config

    def __enter__(self) -> _WasmLaunch:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def run(self, *, duration: float | None = None, max_events: int | None = None,
            interval: float | None = None, sink: EventSink | None = None,
            stop: threading.Event | None = None) -> RunSummary:
        from ebpm.run.wasm import run_wasm

        return run_wasm(self.pkg, args=self.args, duration=duration,
                        allow_types=("tracing", *self.allow_types), stop=stop, sink=sink)


def launch(
    pkg: LocalPackage | StagedPackage, *, args: Sequence[str] = (), native: bool = False,
    allow_types: Sequence[str] = (), attach: Mapping[str, str] | None = None,
) -> Launch | _WasmLaunch:
    """`pkg` ready to run, its kernel work begun: a native run's libbpf load starts here, in a
    thread (`ebpm.run.native.Launch`), so that the caller sets up its printer meanwhile (a
    staged package runs from its text form: config.json is parsed only for `Launch.config`);
    a package's wasm userspace
    (unless `native`; `allow_types`: program types it may load beyond tracing) runs at `run`.
    Use it in a `with` block and call `run(...)` once: leaving the block without it drops the
    load."""
    from ebpm.run.native import Launch, complete_config

    if isinstance(pkg, StagedPackage):
        return Launch(pkg.object, pkg.loadtime, args=args, attach=attach, staged=pkg,
                      identity=pkg.identity or None)
    if _runs_wasm(pkg, native):
        return _WasmLaunch(pkg, args, allow_types)
    return Launch(pkg.require_object(), complete_config(pkg), btf=pkg.btf, args=args,
                  attach=attach, identity=pkg.identity or None)  # (a damaged object named)


def run_package(
    pkg: LocalPackage,
    *,
    args: Sequence[str] = (),
    native: bool = False,
    allow_types: Sequence[str] = (),
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    attach: Mapping[str, str] | None = None,
    sink: EventSink | None = None,
    stop: threading.Event | None = None,
) -> RunSummary:
    """Run `pkg`: its wasm userspace when it has one (unless `native`; `allow_types`: program
    types it may load beyond tracing), else ebpm's own loader streaming to `sink`."""
    with launch(pkg, args=args, native=native, allow_types=allow_types,
                attach=attach) as started:
        return started.run(duration=duration, max_events=max_events, interval=interval,
                           sink=sink, stop=stop)


def run(
    target: str,
    *,
    args: Sequence[str] = (),
    duration: float | None = None,
    max_events: int | None = None,
    interval: float | None = None,
    attach: Mapping[str, str] | None = None,
    sink: EventSink | None = None,
    stop: threading.Event | None = None,
    allow_unsigned: bool = False,
    btf: str | Path | None = None,
    native: bool = False,
    allow_types: Sequence[str] = (),
    access: RegistryAccess | None = None,
) -> RunSummary:
    """Run TARGET (a path, URL or registry reference) as `ebpm run` does: see `run_package`;
    a kernel refusal names where the package came from."""
    pkg = open_target(target, allow_unsigned=allow_unsigned, btf=btf, access=access)
    try:
        return run_package(
            pkg, args=args, native=native, allow_types=allow_types, duration=duration,
            max_events=max_events, interval=interval, attach=attach, sink=sink, stop=stop,
        )
    except LoadError as err:
        if pkg.origin and pkg.origin not in err.message:
            err.message = f"{pkg.origin}: {err.message}"
            err.args = (err.message,)
        raise
