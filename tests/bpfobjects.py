"""The kernel's BPF objects as the tests see them: bpftool's lists, and which process holds which
(/proc/PID/fdinfo names the program, link and map ids behind each fd).

The leak checks compare bpftool's lists before and after; on a machine where another test run
loads the same programs meanwhile (another engineer's suite, a bench), a program that a process
outside this test run holds is that run's, not a leak of this one (`held_by_others`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

__all__ = ["alive_ids", "held_by_others", "held_ids", "links", "programs"]


def _listed(kind: str) -> list[dict[str, object]]:
    out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True)
    return list(json.loads(out.stdout or "[]"))


def programs() -> dict[int, str]:
    """Every loaded BPF program: id -> name."""
    return {int(str(p["id"])): str(p.get("name", "")) for p in _listed("prog")}


def links() -> dict[int, int]:
    """Every BPF link: id -> the id of its program."""
    return {int(str(ln["id"])): int(str(ln.get("prog_id", 0))) for ln in _listed("link")}


def alive_ids(kind: str) -> set[int]:
    """Ids of the BPF objects of `kind` (prog, link, map) the kernel has now."""
    return {int(str(item["id"])) for item in _listed(kind)}


def held_ids(pid: int) -> dict[str, set[int]]:
    """The BPF programs, links and maps process `pid` holds fds to ({"prog": {id...}, ...}),
    read from /proc/PID/fdinfo: robust to other people's programs of the same name."""
    out: dict[str, set[int]] = {"prog": set(), "link": set(), "map": set()}
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return out
    for fd in fds:
        try:
            text = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("prog_id", "link_id", "map_id"):
                out[key[:-3]].add(int(value))
    return out


def _parents() -> dict[int, int]:
    """Every process's parent: pid -> ppid."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            found[int(name)] = int(stat.rpartition(")")[2].split()[1])
    return found


def held_by_others(prog_ids: set[int]) -> set[int]:
    """Those of `prog_ids` that a process outside this one and its descendants holds open
    (another test run's); a program only this process tree holds, or nobody (pinned), is not
    among them."""
    if not prog_ids:
        return set()
    parents = _parents()
    ours = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    held: set[int] = set()
    link_progs: dict[int, int] | None = None
    for pid in parents.keys() - ours:
        ids = held_ids(pid)
        held |= ids["prog"] & prog_ids
        if ids["link"]:
            link_progs = links() if link_progs is None else link_progs
            held |= {link_progs.get(ln, 0) for ln in ids["link"]} & prog_ids
    return held
