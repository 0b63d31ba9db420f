"""The locked graph as text lines for `ebpm tree`: one package per line, repeats marked (*).

A private copy appears under the package that declared it, marked `(private)`; a git package
shows its commit.
"""

from __future__ import annotations

from ebpm.resolver.lockfile import LockEntry, Lockfile

__all__ = ["tree_lines", "tree_data", "short_key_id"]

KEY_ID_SHOWN = len("sha256:") + 12  # as `ebpm key list` and `verify` shorten key ids


def short_key_id(key_id: str) -> str:
    return key_id[:KEY_ID_SHOWN]


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
    signed = f" signed by {short_key_id(entry.key_id)}" if entry.key_id else ""
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


def _node(name: str, entry: LockEntry | None, pid: str) -> dict[str, object]:
    node: dict[str, object] = {"name": name, "package": pid}
    if entry is None:
        node["missing"] = True
        return node
    node.update({"kind": entry.kind, "version": getattr(entry, "version", "") or ""})
    for field in ("url", "sha256", "path", "commit", "key_id", "scope"):
        value = getattr(entry, field, "")
        if value:
            node[field] = value
    return node


def tree_data(lockfile: Lockfile, root: str, *, version: str = "") -> dict[str, object]:
    """The same walk as `tree_lines`, as nested dicts for `ebpm tree --json`: the project
    `root` (its `name` and `version` apart, as every node's); a package seen before carries
    `"repeat": true` and no `dependencies` of its own."""
    by_id = {e.key: e for e in lockfile.packages}
    roots: list[dict[str, object]] = []
    top: dict[str, object] = {"name": root, "version": version, "dependencies": roots}
    shown: set[str] = set()
    stack = [(name, pid, roots) for name, pid in lockfile.dependencies][::-1]
    while stack:
        name, pid, siblings = stack.pop()
        entry = by_id.get(pid)
        node = _node(name, entry, pid)
        siblings.append(node)
        if entry is None:
            continue
        if pid in shown and entry.dependencies:
            node["repeat"] = True
            continue
        shown.add(pid)
        children: list[dict[str, object]] = []
        node["dependencies"] = children
        for dname, dpid in reversed(entry.dependencies):
            stack.append((dname, dpid, children))
    return top
