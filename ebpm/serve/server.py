"""Run the agent: listeners (Unix socket, optional TCP), uvicorn, signals, and the clean exit.

SIGTERM and SIGINT end every event stream, stop accepting requests, then stop every program
(non-persistent ones are detached and unloaded) before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebpm.serve.endpoint import Endpoint, check_tcp_policy, tcp_listener, unix_listener
from ebpm.serve.registry import ProgramRegistry

__all__ = ["AgentOptions", "serve", "figures_of"]

log = logging.getLogger("ebpm.serve")


@dataclass(frozen=True)
class AgentOptions:
    """How the agent listens and whom it serves."""

    socket: Path | None  # the Unix socket (None: TCP only)
    listen: tuple[Endpoint, ...] = ()  # TCP addresses
    token: str | None = None  # bearer token, required for TCP
    tls_cert: str | None = None
    tls_key: str | None = None
    allow_uids: tuple[int, ...] = ()  # besides root and the agent's own user
    max_body: int = 64 << 10
    max_series: int = 500
    reader_capacity: int = 4096
    output_reads: int = 8  # iterator reads (GET .../output) under way at once
    event_streams: int = 64  # event streams (GET .../events) under way at once
    send_timeout: float = 60.0  # seconds a long answer waits for its client to take more
    name: str = "default"  # the agent's name: its pins and state apart from other agents'
    pin_root: Path | None = None  # default /sys/fs/bpf/ebpm/NAME
    state_dir: Path | None = None  # default /var/lib/ebpm/agent/NAME (root)
    warm: int = 8  # stopped programs kept loaded, detached, for a fast start again (0: none)


def figures_of(programs: ProgramRegistry) -> Callable[[], list[Any]]:
    """The metrics collector's view of the registry."""
    from ebpm.serve.metrics import ProgramFigures

    def figures() -> list[Any]:
        out = []
        for prog in programs.list():
            gen = prog.current
            config = gen.loaded.package.config
            out.append(ProgramFigures(
                id=prog.id, package=config.name, version=config.version,
                events=prog.fanout.published, lost=gen.kernel_lost,
                reader_lost=prog.fanout.lost, readers=prog.fanout.readers,
                load_seconds=gen.load_seconds, maps=gen.snapshot_maps(),
                rules=config.metrics, status=prog.status,
                digest=gen.loaded.digest))
        return out

    return figures


def _server_class() -> type:
    import uvicorn

    class AgentServer(uvicorn.Server):  # type: ignore[misc]
        """uvicorn's server without its own signal handling (the agent has one for all)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return AgentServer


def serve(options: AgentOptions, *, ready: Callable[[list[str]], None] | None = None,
          programs: ProgramRegistry | None = None) -> None:
    """Listen and serve until SIGTERM/SIGINT; every non-persistent program is unloaded after."""
    import uvicorn

    from ebpm.serve.app import BodyLimit, build_app, quiet_stalled
    from ebpm.serve.auth import BearerAuth, peer_checked_protocol
    from ebpm.serve.metrics import AgentCollector

    tls = bool(options.tls_cert and options.tls_key)
    for ep in options.listen:
        check_tcp_policy(ep, token=options.token, tls=tls)
    if programs is None:
        from ebpm.serve.pins import Persistence, default_pin_root, default_state_dir
        from ebpm.serve.warm import WarmCache

        programs = ProgramRegistry(Persistence(
            options.pin_root or default_pin_root(options.name),
            options.state_dir or default_state_dir(options.name)), warm=WarmCache(options.warm))
    collector = AgentCollector(figures_of(programs), max_series=options.max_series)
    app = BodyLimit(build_app(programs, collector=collector,
                              reader_capacity=options.reader_capacity,
                              output_reads=options.output_reads,
                              event_streams=options.event_streams,
                              send_timeout=options.send_timeout),
                    max_bytes=options.max_body)
    logging.getLogger("uvicorn.error").addFilter(quiet_stalled)  # (logged by the app)
    listeners: list[tuple[Any, socket.socket, str]] = []
    server_cls = _server_class()
    common: dict[str, Any] = {"lifespan": "off", "log_config": None, "access_log": False,
              "timeout_graceful_shutdown": 5, "timeout_keep_alive": 30}
    try:
        if options.socket is not None:
            made_dir = not options.socket.parent.exists()  # (removed again at exit if empty)
            sock = unix_listener(options.socket)
            uids = {0, os.geteuid(), *options.allow_uids}
            config = uvicorn.Config(app, http=peer_checked_protocol(uids), **common)
            listeners.append((server_cls(config), sock, f"unix:{options.socket}"))
        for ep in options.listen:
            sock = tcp_listener(ep)
            host, port = sock.getsockname()[:2]
            shown = Endpoint(host=host, port=port, tls=tls)
            assert options.token is not None
            guarded = BearerAuth(app, token=options.token, exempt={"/healthz"})
            config = uvicorn.Config(guarded, http="h11", ssl_certfile=options.tls_cert,
                                    ssl_keyfile=options.tls_key, **common)
            listeners.append((server_cls(config), sock, str(shown)))
    except BaseException:
        for _, sock, _ in listeners:
            sock.close()
        raise
    try:
        adopted = programs.adopt_all()
        if adopted:
            log.warning("adopted %d pinned program(s): %s", len(adopted),
                        ", ".join(p.id for p in adopted))
        asyncio.run(_main(listeners, programs, ready))
    finally:
        for _, sock, _ in listeners:
            sock.close()
        if options.socket is not None:
            with contextlib.suppress(OSError):
                options.socket.unlink()
            if made_dir:
                with contextlib.suppress(OSError):
                    options.socket.parent.rmdir()


async def _main(listeners: list[tuple[Any, socket.socket, str]], programs: ProgramRegistry,
                ready: Callable[[list[str]], None] | None) -> None:
    loop = asyncio.get_running_loop()
    servers = [s for s, _, _ in listeners]

    def stop() -> None:
        log.info("stopping: ending streams, then every program")
        programs.close_streams()
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)

    async def announce() -> None:
        while not all(s.started for s in servers):
            if any(s.should_exit for s in servers):
                return
            await asyncio.sleep(0.01)
        if ready is not None:
            ready([name for _, _, name in listeners])

    try:
        await asyncio.gather(announce(), *(s.serve(sockets=[sock]) for s, sock, _ in listeners))
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(programs.shutdown)
