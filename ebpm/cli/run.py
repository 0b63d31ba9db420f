"""`ebpm run REF|PATH|URL [-- ARGS]`: load a package, print its events and maps until stopped."""

from __future__ import annotations

import sys

from ebpm.cli.params import (
    AGENT_OPTIONS,
    REGISTRY_OPTIONS,
    Argument,
    Choice,
    Command,
    File,
    Float,
    Int,
    Option,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ebpm.cli.printers import JsonPrinter, TablePrinter
    from ebpm.run.native import SignalStop
    from ebpm.run.sink import EventSink


__all__ = ["RUN", "run"]


# the program types a wasm guest may be allowed (ebpm.loader.wasm.policy.CATEGORIES, written
# out so that parsing the command line imports no wasm code; a test keeps them equal)
WASM_CATEGORIES = ("tracing", "xdp", "tc", "cgroup", "other", "all")


def run(
    target: str, package_args: tuple[str, ...], json_lines: bool, duration: float | None,
    max_events: int | None, interval: float | None, attach: tuple[str, ...], unit: str | None,
    allow_unsigned: bool, btf_path: str | None, native: bool, allow_types: tuple[str, ...],
    metrics: str | None, detach: bool, persist: bool, agent: str | None,
    token_file: str | None, insecure: bool, ca_file: str | None,
) -> None:
    """Load and attach TARGET, then print its events (or maps) until Ctrl-C.

    \b
    TARGET is a registry reference (NAME[:VERSION], resolved against $EBPM_REGISTRY),
    a local .bpf.o or package directory (built by `ebpm build`), or an http(s) URL to
    a .bpf.o. Package flags follow `--`: `ebpm run opensnoop -- --pid 42`;
    `ebpm run opensnoop -- -h` lists them. A package with a WebAssembly userspace
    runs it (its arguments follow `--`) unless --native. Registry packages come
    from the store in $EBPM_HOME; with $EBPM_OFFLINE=1 nothing is fetched.
    With --agent ADDRESS the agent (`ebpm serve`) runs it and this prints its
    events until the run ends (there, too: with its summary and exit status, or its
    error), then stops it; --detach hands it over and returns.
    """
    from ebpm.cli.startup import resume

    args = list(package_args)
    if args and args[0] == "--":
        args = args[1:]
    if detach or agent:
        resume()  # (the cycle collector: only a run here starts libbpf's load first, below)
    if detach:
        from ebpm import interrupts

        interrupts.release()  # no run here to stop: a Ctrl-C is a KeyboardInterrupt again
        _detach(target, args, allow_unsigned=allow_unsigned, persist=persist, agent=agent,
                token_file=token_file, printing={
                    "--json": json_lines, "--duration": duration is not None,
                    "--max-events": max_events is not None, "--interval": interval is not None,
                    "--unit": unit is not None}, loading={
                    "--attach": bool(attach), "--btf": bool(btf_path), "--native": native,
                    "--allow": bool(allow_types), "--metrics": bool(metrics)})
        return
    if persist:
        from ebpm.errors import UsageError

        raise UsageError("--persist goes with --detach", hint="ebpm run --detach --persist REF")
    if token_file and not agent:
        from ebpm.errors import UsageError

        raise UsageError("--token-file is the agent's token: it goes with --agent or --detach",
                         hint="ebpm run --agent http://HOST:PORT --token-file FILE REF; "
                         "leave it out to run the package here")
    if agent and not _asks_help(args):  # `-- -h`: the flags are listed here, below
        _attached(target, args, json_lines=json_lines, duration=duration, max_events=max_events,
                  interval=interval, unit=unit, allow_unsigned=allow_unsigned, agent=agent,
                  token_file=token_file,
                  refused={"--attach": bool(attach), "--btf": bool(btf_path),
                           "--native": native, "--allow": bool(allow_types),
                           "--metrics": bool(metrics)})
        return
    from ebpm.cli.exits import echo, setup_logging
    from ebpm.run import Launch, help_for, launch, open_for_run, parse_attach, signals_stop_runs

    setup_logging(0)  # warnings as `name: message` (the full CLI has set up -v already)
    targets = parse_attach(attach)
    if metrics:  # (checked before anything is fetched or loaded)
        from ebpm.serve.metrics import metrics_endpoint

        metrics_endpoint(metrics)
    if allow_unsigned:
        echo("warning: --allow-unsigned: signatures are not enforced", err=True)
    from ebpm.run.source import is_local, shadowing_path

    shadowed = shadowing_path(target)
    if shadowed:
        echo(f"ebpm: running the local {target!r} (./{target}); "
                   f"the registry package is {shadowed}", err=True)
    local = is_local(target)
    # from here a signal is a flag, never an exception mid-load; a local run's Ctrl-C and
    # SIGTERM stay held in the kernel (ebpm.interrupts) until its first event is out (or, one
    # that came meanwhile, until just before the load), so that `signal` (with enum) is
    # imported after it; a wasm userspace's host takes them as it starts the guest. What comes
    # from a registry or URL is fetched with the handlers in place, raising there (a Ctrl-C
    # during a slow download ends the run at once, "interrupted": nothing is loaded yet)
    with signals_stop_runs(now=not local) as stops:
        # registry settings only for what comes from a registry or URL: a local run reads
        # none of them (nor imports what they need)
        if local:
            access = None
        else:
            from ebpm.cli.params import registry_access

            access = registry_access(insecure=insecure, ca_file=ca_file)
        # (a built directory is staged: it runs from the text form of what the run needs of
        # its config, `ebpm.loadtime`; config.json is parsed only for --metrics)
        pkg = stops.interrupting(lambda: open_for_run(
            target, args=args, allow_unsigned=allow_unsigned, btf=btf_path, access=access))
        text = help_for(pkg, args, native=native)
        if text is not None:
            resume()
            echo(text)
            return
        if (json_lines or metrics) and pkg.wasm is not None and not native:
            from ebpm.errors import UsageError

            flag = "--json" if json_lines else "--metrics"
            if pkg.object is None:  # a bare module: --native has no object to run either
                raise UsageError(f"{flag}: {target} is a WebAssembly module, which prints "
                                 f"its own output; {flag} is not available for it",
                                 hint=f"leave out {flag}; a package with both layers (its "
                                 "BPF object beside the module) can run with --native")
            if json_lines:
                raise UsageError("--json: the package runs its own WebAssembly userspace, "
                                 "which prints its own output", hint="add --native to print "
                                 "its events with ebpm's printer (as JSON lines with --json)")
            raise UsageError("--metrics: the package runs its own WebAssembly userspace",
                             hint="add --native to run it with ebpm's loader and metrics")
        # the kernel's work first: libbpf loads (in a thread) while the printer is set up
        with launch(pkg, args=args, native=native, allow_types=allow_types,
                    attach=targets) as started:
            if not isinstance(started, Launch):  # a wasm userspace: its host takes the signals
                _hold_for_the_guest(stops)  # as it starts the guest
            from ebpm.cli.printers import JsonPrinter, TablePrinter

            out = sys.stdout  # (block-buffered into a pipe: the printer flushes each batch)
            # the start-up is over once the run is under way (attached, its start line
            # printed): the cycle collector on again from there (ebpm.cli.startup)
            shown: JsonPrinter | TablePrinter = (
                JsonPrinter(out, on_start=resume) if json_lines
                else TablePrinter(out, unit, on_start=resume))
            printer: EventSink = shown
            server = None
            if metrics:
                from ebpm.serve.metrics import AgentCollector, RunMetrics, serve_metrics

                config = started.config
                tap = RunMetrics(printer, package=config.name, version=config.version,
                                 rules=config.metrics, interval=interval)
                server = serve_metrics(metrics, AgentCollector(tap.figures))
                printer = tap
                echo(f"ebpm: metrics at http://{metrics}/metrics", err=True)
            try:
                summary = started.run(duration=duration, max_events=max_events,
                                      interval=interval, sink=printer)
            finally:
                if server is not None:
                    server.shutdown()
                    server.server_close()
        out.flush()
        shown.finish(summary)
        out.flush()
    if summary.status:
        sys.exit(summary.status)


def _hold_for_the_guest(stops: SignalStop) -> None:
    """SIGINT and SIGTERM held in the kernel until the wasm guest's host installs its own
    handlers (`ebpm.interrupts`: it takes them there), so that none reaches the run's, which
    the guest would never hear (it hard-stopped 5 s later); one that came since the package
    was fetched (while its module was read and compiled) ends the run here, before the guest
    starts."""
    from ebpm import interrupts

    if stops.signum is not None:
        raise KeyboardInterrupt
    interrupts.hold(in_kernel=True)


def _asks_help(args: list[str]) -> bool:
    from ebpm.loader.args import wants_help

    return wants_help(args)


def _attached(target: str, args: list[str], *, json_lines: bool, duration: float | None,
              max_events: int | None, interval: float | None, unit: str | None,
              allow_unsigned: bool, agent: str,
              token_file: str | None, refused: dict[str, bool]) -> None:
    """`run --agent ADDRESS` without --detach: the agent runs TARGET, this prints its events
    and result maps until the run ends, then the agent stops it (ebpm.serve.attached)."""
    from ebpm import interrupts
    from ebpm.errors import UsageError

    given = [flag for flag, on in refused.items() if on]
    if given:
        raise UsageError(f"--agent: {given[0]} is for a run in this process",
                         hint="leave out --agent (and unset EBPM_AGENT) to run it here")
    from ebpm.cli.params import client_from
    from ebpm.serve.attached import run_in_agent

    interrupts.release()  # run_in_agent stops the run on Ctrl-C from here
    out = sys.stdout
    if not out.isatty():
        out.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    from ebpm.cli.printers import JsonPrinter, TablePrinter

    shown: JsonPrinter | TablePrinter = JsonPrinter(out) if json_lines else TablePrinter(out, unit)
    summary = run_in_agent(client_from(agent, token_file), target, args=args,
                           allow_unsigned=allow_unsigned, duration=duration,
                           max_events=max_events, interval=interval, sink=shown)
    out.flush()
    shown.finish(summary)
    out.flush()
    if summary.status:  # a WebAssembly guest's exit status, as a standalone run exits
        sys.exit(summary.status)


def _detach(target: str, args: list[str], *, allow_unsigned: bool, persist: bool,
            agent: str | None, token_file: str | None, printing: dict[str, bool],
            loading: dict[str, bool]) -> None:
    """`run --detach`: the running agent pulls, loads and attaches TARGET; print its id.
    Options of what this process prints (`printing`) or of how it loads (`loading`) are
    refused: nothing is printed here, and the agent loads a package as its metadata says."""
    from ebpm.errors import UsageError

    given = [flag for flag, on in printing.items() if on]
    if given:
        raise UsageError(f"--detach: {given[0]} is not for a detached program (nothing is "
                         "printed here)", hint="read its events with `ebpm logs ID -f`, or "
                         "leave out --detach to print them here")
    given = [flag for flag, on in loading.items() if on]
    if given:
        raise UsageError(f"--detach: {given[0]} is for a run in this process (the agent "
                         "loads a package as its metadata says)",
                         hint="leave out --detach to run it here")
    from ebpm.cli.exits import echo
    from ebpm.cli.params import client_from

    doc = client_from(agent, token_file).call("POST", "/v1/programs", {
        "ref": target, "args": args, "allow_unsigned": allow_unsigned, "persist": persist})
    echo(doc["id"])
    attached = ", ".join(doc.get("attached", []))
    echo(f"ebpm: {doc['ref']} ({doc['digest'][:19]}) runs in the agent as {doc['id']}"
               f"{': ' + attached if attached else ''}", err=True)


RUN = Command("run", run, signals=True, resumes=True, help=run.__doc__ or "", params=[
    Argument("target"),
    Argument("package_args", rest=True),
    Option("--json", dest="json_lines", flag=True, help="Print one JSON object per line."),
    Option("--duration", type=Float(0), metavar="S", help="Stop after S seconds."),
    Option("--max-events", type=Int(1), metavar="N", help="Stop after N events."),
    Option("--interval", type=Float(0), metavar="S",
           help="Print result maps every S seconds (default: 1 without an event stream)."),
    Option("--attach", dest="attach", multiple=True, metavar="PROG=TARGET",
           help="Attach PROG explicitly: uprobe:BIN:FUNC, uretprobe:BIN:FUNC, "
           "tracepoint:CAT:NAME, raw_tp:NAME, kprobe:FUNC, xdp:IFNAME, tc:IFNAME[:egress]."),
    Option("--unit", metavar="UNIT",
           help="Label of histogram values (usecs, msecs, bytes...); default: the package's "
           "[display] unit, else 'value'."),
    Option("--allow-unsigned", flag=True,
           help="Run a package that carries no trusted signature (a registry package, or an "
           "object by URL without a #sha256= pin)."),
    Option("--btf", dest="btf_path", type=File(), metavar="FILE",
           help="BTF for the event types (raw .btf or an object compiled with -g), when the "
           "package has none."),
    Option("--native", flag=True,
           help="Use ebpm's own event printer even when the package has a wasm userspace."),
    Option("--allow", dest="allow_types", multiple=True, type=Choice(WASM_CATEGORIES),
           help="Program types a wasm userspace may load beyond tracing: xdp, tc, cgroup, "
           "other, all (see docs/wasm.md)."),
    Option("--metrics", dest="metrics", metavar="HOST:PORT",
           help="Serve Prometheus metrics of this run at http://HOST:PORT/metrics "
           "(loopback), e.g. 127.0.0.1:9100."),
    Option("--detach", flag=True,
           help="Hand the package to the running agent (`ebpm serve`), print its id and "
           "return; see `ebpm ps`, `ebpm logs`, `ebpm stop`."),
    Option("--persist", flag=True,
           help="With --detach: the program outlives the agent (pinned in bpffs)."),
    *AGENT_OPTIONS,
    *REGISTRY_OPTIONS,  # (not registry=True: the access is made only for a registry/URL)
])
