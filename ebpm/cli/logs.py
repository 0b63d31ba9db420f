"""`ebpm logs ID [-f]`: a program's events from the running agent (on the lean entry: no click)."""

from __future__ import annotations

from ebpm.cli.exits import echo
from ebpm.cli.params import AGENT_OPTIONS, Argument, Command, Option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ebpm.cli.printers import TablePrinter
    from ebpm.serve.client import AgentClient

__all__ = ["LOGS", "logs"]


def logs(program_id: str, follow: bool, tail: str, json_lines: bool, agent: str | None,
         token_file: str | None) -> None:
    """Print a program's recent events (and with -f, new ones as they come).

    \b
    ID is a program id as `ebpm ps` shows it, or a unique prefix of at least 3
    characters. With -f it ends when the program's run ends (stopped, or ended by
    itself: how is printed on stderr). A program without an event stream (only
    result maps, such as a histogram) has its maps printed instead, as counted since
    it started; one with an iterator program (SEC("iter/...")) has its iterator run
    anew and what it writes printed, as `cat` of its pinned file would.
    """
    import json
    import sys

    from ebpm.cli.params import client_from
    from ebpm.errors import UsageError

    if tail != "all" and not tail.isdigit():
        raise UsageError(f"--tail {tail}: expected a number or 'all'")
    client = client_from(agent, token_file)
    out = sys.stdout
    program = client.call("GET", f"/v1/programs/{program_id}")
    if program.get("streams") == [] and program.get("iterators"):
        _iterator_output(client, program, json_lines=json_lines, follow=follow)
        return
    if program.get("streams") == [] and program.get("results"):
        _result_maps(client, program, json_lines=json_lines, follow=follow)
        return
    reporter: TablePrinter | None = None
    if not json_lines:
        from ebpm.cli.printers import TablePrinter

        reporter = TablePrinter(out)
    query = f"?follow={'true' if follow else 'false'}&tail={tail}&format=ndjson"
    lost = 0
    ended: dict[str, Any] = {}
    for record in client.stream(f"/v1/programs/{program_id}/events{query}"):
        meta = record.get("_ebpm") if isinstance(record, dict) else None
        if meta is not None:
            lost = int(record.get("lost", lost))
            if meta == "end":
                ended = record
            continue
        if reporter is None:
            out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        else:
            reporter.event(record)
        if follow:
            out.flush()
    out.flush()
    if lost:
        echo(f"ebpm: {lost} events lost (this reader was too slow)", err=True)
    if ended.get("status") in ("exited", "failed", "stopped"):  # the run is over
        how = str(ended["status"])
        if ended.get("exit_status") is not None:
            how += f" with status {ended['exit_status']}"
        if ended.get("error") and ended.get("exit_status") is None:
            how += f": {ended['error']}"
        echo(f"ebpm: {program['id']} {how}", err=True)


def _iterator_output(client: AgentClient, program: dict[str, Any], *, json_lines: bool,
                     follow: bool) -> None:
    """A program without an event stream whose iterators the agent runs anew on each read:
    what they write now, as `ebpm run` prints it (and its result maps, if it has any)."""
    import sys

    from ebpm.cli.printers import JsonPrinter, TablePrinter
    from ebpm.errors import LoadError

    printer = JsonPrinter(sys.stdout) if json_lines else TablePrinter(sys.stdout)
    end = client.output(program["id"], printer.output)
    printer.flush()
    if end.get("error"):
        raise LoadError(f"{program['id']}: the agent could not read its output: "
                         f"{end['error']}", hint="ebpm logs ID again, or stop and start it")
    if program.get("results"):
        printer.maps(client.maps(program["id"]), True)
    cut = end.get("truncated")
    if cut:
        echo(f"ebpm: the agent cut {program['id']}'s output after "
             f"{sum(dict(end.get('output', {})).values())} bytes ({cut})", err=True)
    if follow:
        echo(f"hint: an iterator has no events to follow; `ebpm logs {program['id']}` again "
             "runs it anew", err=True)


def _result_maps(client: AgentClient, program: dict[str, Any], *, json_lines: bool,
                 follow: bool) -> None:
    """A program without an event stream (only result maps, as runqlat): its maps now."""
    import sys

    from ebpm.cli.printers import JsonPrinter, TablePrinter

    printer = JsonPrinter(sys.stdout) if json_lines else TablePrinter(sys.stdout)
    printer.maps(client.maps(program["id"]), True)
    echo(f"ebpm: {program['id']} has no event stream; these are its result maps "
         "(counted since it started)", err=True)
    if follow:
        echo(f"hint: it has no events to follow; `ebpm logs {program['id']}` again shows its "
             "maps as they grow", err=True)


LOGS = Command("logs", logs, help=logs.__doc__ or "", params=[
    Argument("program_id", metavar="ID"),
    Option("-f", "--follow", flag=True, help="Keep printing new events until Ctrl-C."),
    Option("--tail", default="all", metavar="N",
           help="Recent events to print first (a number or 'all')."),
    Option("--json", dest="json_lines", flag=True, help="Print one JSON object per line."),
    *AGENT_OPTIONS,
])
