"""`ebpm serve` (the node agent) and its clients `ebpm ps`, `ebpm stop` (`ebpm logs`: logs.py)."""

from __future__ import annotations

import click

from ebpm.cli.options import agent_options, json_option
from ebpm.cli.params import client_from

__all__ = ["serve", "ps", "stop"]


@click.command()
@click.option("--socket", "socket_path", type=click.Path(dir_okay=False), metavar="PATH",
              help="Unix socket to listen on (mode 0600). [default: /run/ebpm/agent.sock "
              "as root] [env: EBPM_AGENT_SOCKET]")
@click.option("--listen", multiple=True, metavar="HOST:PORT",
              help="Also listen on TCP (needs --token-file; TLS unless loopback).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Bearer token required on TCP listeners. [env: EBPM_AGENT_TOKEN]")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="TLS certificate (PEM) for TCP listeners.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="TLS private key (PEM) for TCP listeners.")
@click.option("--allow-uid", "allow_uids", type=int, multiple=True, metavar="UID",
              help="Also serve this user on the Unix socket (root and the agent's own user "
              "always are).")
@click.option("--max-body", type=int, default=64 << 10, show_default=True, metavar="BYTES",
              help="Largest request body.")
@click.option("--max-series", type=int, default=500, show_default=True, metavar="N",
              help="Most series one map-derived metric may have per program.")
@click.option("--reader-buffer", type=int, default=4096, show_default=True, metavar="N",
              help="Events a stream reader may fall behind before it loses events (counted).")
@click.option("--max-output-reads", type=click.IntRange(min=1), default=8, show_default=True,
              metavar="N", help="Iterator reads (GET .../output) run at once; one more gets "
              "503 with Retry-After.")
@click.option("--max-streams", type=click.IntRange(min=1), default=64, show_default=True,
              metavar="N", help="Event streams (GET .../events: ebpm logs -f, run --agent) "
              "under way at once; one more gets 503 with Retry-After.")
@click.option("--send-timeout", type=click.FloatRange(min=0, min_open=True), default=60,
              show_default=True, metavar="SECONDS", help="Drop a client that takes none of "
              "its event stream or iterator read for this long, and give its place back.")
@click.option("--name", default="default", show_default=True,
              help="The agent's name: its pins and state are kept apart from other agents'.")
@click.option("--pin-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where persisted programs are pinned (bpffs). [default: /sys/fs/bpf/ebpm/NAME]")
@click.option("--state-dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Where the agent records its persisted programs. "
              "[default: /var/lib/ebpm/agent/NAME as root]")
@click.option("--warm", type=click.IntRange(min=0), default=8, show_default=True, metavar="N",
              help="Keep up to N stopped programs loaded (verified, detached), so that starting "
              "one again with the same flags only attaches it; 0: unload at once.")
def serve(socket_path: str | None, listen: tuple[str, ...], token_file: str | None,
          tls_cert: str | None, tls_key: str | None, allow_uids: tuple[int, ...],
          max_body: int, max_series: int, reader_buffer: int, max_output_reads: int,
          max_streams: int, send_timeout: float, name: str,
          pin_dir: str | None, state_dir: str | None, warm: int) -> None:
    """Run the node agent: start, list, stream and stop programs over HTTP.

    \b
    It listens on a Unix socket (mode 0600, peer credentials checked); with
    --listen also on TCP, where every request needs the bearer token. The API is
    described at GET /openapi.json; metrics at GET /metrics. SIGTERM unloads every
    program that was not started with persist; persisted ones stay attached through
    their pins, and the agent adopts them again when it restarts.
    """
    import re
    from pathlib import Path

    from ebpm.errors import UsageError
    from ebpm.serve.auth import read_token
    from ebpm.serve.endpoint import default_socket, parse_endpoint
    from ebpm.serve.server import AgentOptions
    from ebpm.serve.server import serve as run_agent

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
    if not send_timeout > 0:  # (click's FloatRange lets nan through)
        raise UsageError(f"--send-timeout {send_timeout}: expected seconds above 0")
    if bool(tls_cert) != bool(tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    endpoints = []
    for item in listen:
        ep = parse_endpoint(item)
        if ep.is_unix:
            raise UsageError(f"--listen {item}: expected HOST:PORT",
                             hint="the Unix socket is set with --socket")
        endpoints.append(ep)
    options = AgentOptions(
        socket=Path(socket_path) if socket_path else default_socket(),
        listen=tuple(endpoints), token=read_token(token_file), tls_cert=tls_cert,
        tls_key=tls_key, allow_uids=allow_uids, max_body=max_body, max_series=max_series,
        reader_capacity=max(1, reader_buffer), output_reads=max_output_reads,
        event_streams=max_streams, send_timeout=send_timeout, name=name,
        pin_root=Path(pin_dir) if pin_dir else None,
        state_dir=Path(state_dir) if state_dir else None, warm=warm)

    def ready(names: list[str]) -> None:
        for name in names:
            click.echo(f"ebpm agent: listening on {name}", err=True)

    run_agent(options, ready=ready)


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@click.command()
@agent_options
@json_option
def ps(agent: str | None, token_file: str | None, as_json: bool) -> None:
    """List the programs the agent runs."""
    from ebpm.cli.app import echo_json
    from ebpm.cli.output import table

    doc = client_from(agent, token_file).call("GET", "/v1/programs")
    programs = doc.get("programs", [])
    if as_json:
        echo_json(programs)
        return
    rows = [(p["id"], p["ref"], p["status"], p["events"], p["lost"] + p["reader_lost"],
             _age(p["uptime"]), ", ".join(a.split(" -> ")[-1] for a in p["attached"]))
            for p in programs]
    table(["ID", "REF", "STATUS", "EVENTS", "LOST", "UP", "ATTACHED"], rows)


@click.command()
@click.argument("ids", nargs=-1, required=True)
@agent_options
def stop(ids: tuple[str, ...], agent: str | None, token_file: str | None) -> None:
    """Stop programs: detach, unload, and remove their pins.

    \b
    IDS are program ids as `ebpm ps` shows them, or unique prefixes of at least 3
    characters. Every program that can be stopped is, even when another id is wrong;
    the wrong ones are reported together at the end (exit status 1).
    """
    from ebpm.errors import NotFoundError, UsageError

    client = client_from(agent, token_file)
    failed: list[NotFoundError | UsageError] = []
    for pid in ids:
        try:
            doc = client.call("DELETE", f"/v1/programs/{pid}")
        except (NotFoundError, UsageError) as err:  # this id only: the others still go
            failed.append(err)
            continue
        click.echo(f"stopped {doc['id']} ({doc['ref']}, {doc['events']} events)")
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise NotFoundError(f"{len(failed)} of {len(ids)} programs not stopped: "
                            + "; ".join(err.message for err in failed),
                            hint="list them: ebpm ps")
