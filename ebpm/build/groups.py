"""Alternatives: programs that reach one hook in different ways, ordered by preference."""

from __future__ import annotations

from ebpm.build.sections import hook_of
from ebpm.errors import ManifestError
from ebpm.package import ProgramSpec
from ebpm.record import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["FALLBACK_SUFFIXES", "group_programs"]

# `X_raw`, `X_tp`, ... is a fallback of program `X` (libbpf-tools' naming habit).
FALLBACK_SUFFIXES = ("raw", "raw_tp", "tp", "btf", "kprobe", "fallback", "alt")


def _fallback_of(name: str) -> str | None:
    """`X` for `X_raw`, `X_tp2`, ... (a suffix, then digits if any; the shortest `X`), else
    None. (str methods, not re: this runs on the way to a bare object's load.)"""
    at = name.find("_", 1)
    while at != -1:
        if name[at + 1:].rstrip("0123456789") in FALLBACK_SUFFIXES:
            return name[:at]
        at = name.find("_", at + 1)
    return None


def group_programs(
    programs: Sequence[ProgramSpec], declared: Mapping[str, Sequence[str]] | None = None,
    *, where: str = "",
) -> tuple[ProgramSpec, ...]:
    """Set `group` on alternatives and order each group with the preferred program first.

    Groups come from `declared` (ebpm.toml `[build.groups]`: group name -> program names in
    order of preference), then from names (`X` and `X_raw`/`X_tp`/...: `X` first), then from
    hooks (`tp_btf/H` before `raw_tp/H` before `tracepoint/.../H`; `fentry/F` before `kprobe/F`).
    A program's group is named after the preferred program unless declared otherwise.
    `where` prefixes errors in `declared` (the ebpm.toml it comes from).
    """
    by_name = {p.name: p for p in programs}
    order = {p.name: i for i, p in enumerate(programs)}
    member_of: dict[str, str] = {}
    groups: dict[str, list[str]] = {}

    for group, names in (declared or {}).items():
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ManifestError(
                f"{where}[build.groups] {group}: expected a list of program names")
        for n in names:
            if n not in by_name:
                raise ManifestError(
                    f"{where}[build.groups] {group}: no program named {n!r} in the object",
                    hint="programs: " + ", ".join(sorted(by_name)),
                )
            if n in member_of:
                raise ManifestError(f"{where}[build.groups]: program {n!r} is in two groups")
            member_of[n] = group
        groups[group] = list(names)

    def join(preferred: str, other: str) -> None:
        if other in member_of:
            return
        group = member_of.get(preferred)
        if group is None:
            group = preferred
            member_of[preferred] = group
            groups[group] = [preferred]
        member_of[other] = group
        groups[group].append(other)

    for p in programs:
        base = _fallback_of(p.name)
        if base is not None and base in by_name and p.name not in member_of:
            join(base, p.name)

    by_hook: dict[str, list[tuple[int, int, str]]] = {}
    for p in programs:
        hook = hook_of(p.type, p.attach)
        if hook is not None:
            by_hook.setdefault(hook[0], []).append((hook[1], order[p.name], p.name))
    for entries in by_hook.values():
        if len(entries) < 2:
            continue
        entries.sort()
        ranked = [name for _, _, name in entries]
        anchor = next((n for n in ranked if n in member_of), ranked[0])
        for n in ranked:
            if n != anchor:
                join(anchor, n)

    out: list[ProgramSpec] = []
    emitted: set[str] = set()
    for p in programs:
        if p.name in emitted:
            continue
        name = member_of.get(p.name)
        if name is None:
            out.append(p)
            emitted.add(p.name)
            continue
        for n in groups[name]:
            out.append(replace(by_name[n], group=name))
            emitted.add(n)
    return tuple(out)
