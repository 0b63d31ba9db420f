"""The locked graph as text lines for `ebpm tree`: one package per line, repeats marked (*).

A private copy appears under the package that declared it, marked `(private)`; a git package
shows its commit.
"""

from __future__ import annotations

from ebpm.resolver.lockfile import LockEntry, Lockfile

__all__ = ["tree_lines"]


def _label(name: str, entry: LockEntry | None, pid: str, registry: str) -> str:
    if entry is None:
        return f"{name} (missing from the lock)"
    if entry.kind == "url":
        return f"{name} {entry.url} (sha256 {entry.sha256[:12]})"
    if entry.kind == "path":
        return f"{name} {entry.version} ({entry.path})"
    private = " (private)" if entry.scope else ""
    if entry.kind == "git":
        at = f"{entry.url}" + (f" {entry.subdir}" if entry.subdir else "")
        return f"{name} {entry.version} ({at} @ {entry.commit[:12]}){private}"
    package = entry.package
    shown = package.removeprefix(f"{registry}/") if registry else package
    where = "" if shown == name else f" ({shown})"
    signed = f" signed by {entry.key_id}" if entry.key_id else ""
    return f"{name} {entry.version}{where}{signed}{private}"


def tree_lines(lockfile: Lockfile, root: str, *, registry: str = "") -> list[str]:
    """`root`, then its dependencies as a tree; a package shown before is not expanded again."""
    by_id = {e.key: e for e in lockfile.packages}
    lines = [root]
    shown: set[str] = set()
    # Iterative depth-first walk (deep chains must not hit the recursion limit).
    stack: list[tuple[str, str, str, bool]] = [
        (name, pid, "", i == len(lockfile.dependencies) - 1)
        for i, (name, pid) in enumerate(lockfile.dependencies)
    ][::-1]
    while stack:
        name, pid, prefix, last = stack.pop()
        entry = by_id.get(pid)
        branch = "└── " if last else "├── "
        repeat = pid in shown and entry is not None and bool(entry.dependencies)
        mark = " (*)" if repeat else ""
        lines.append(prefix + branch + _label(name, entry, pid, registry) + mark)
        if entry is None or repeat:
            continue
        shown.add(pid)
        child_prefix = prefix + ("    " if last else "│   ")
        deps = entry.dependencies
        for i in range(len(deps) - 1, -1, -1):
            dname, dpid = deps[i]
            stack.append((dname, dpid, child_prefix, i == len(deps) - 1))
    return lines
