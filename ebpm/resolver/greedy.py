"""The fast path of resolution: one pass, newest (or locked) version first, no backtracking.

resolvelib re-checks every known requirement on every round, which makes large graphs
quadratic (10,000 packages would take many minutes). Most real graphs need no backtracking at
all, so `resolve()` first tries this linear pass; it returns None at the first requirement that
an earlier pin does not satisfy, and the caller then runs resolvelib, which backtracks and
explains failures. Whatever this pass returns satisfies every requirement it met.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from ebpm.resolver.provider import Candidate, Provider, Requirement

__all__ = ["greedy"]


def greedy(
    provider: Provider, requirements: Iterable[Requirement], reporter: Any = None
) -> dict[str, Candidate] | None:
    """Pin breadth-first with the provider's candidate order; None when a pin would conflict."""
    wanted: dict[str, list[Requirement]] = {}
    pinned: dict[str, Candidate] = {}
    queue: deque[str] = deque()

    def add(req: Requirement, parent: Candidate | None) -> bool:
        provider.parent.setdefault(req.package, parent)
        reqs = wanted.setdefault(req.package, [])
        reqs.append(req)
        pin = pinned.get(req.package)
        if pin is not None:
            return provider.is_satisfied_by(req, pin)
        if len(reqs) == 1:
            queue.append(req.package)
        return True

    for req in requirements:
        if not add(req, None):
            return None
    while queue:
        pid = queue.popleft()
        matches = provider.find_matches(pid, {pid: iter(wanted[pid])}, {pid: iter(())})
        if not matches:
            return None
        pin = matches[0]
        pinned[pid] = pin
        if reporter is not None:
            reporter.pinning(candidate=pin)
        for dep in provider.get_dependencies(pin):
            if not add(dep, pin):
                return None
    return pinned
