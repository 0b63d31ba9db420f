"""Benchmark: resolve synthetic dependency graphs of growing size from an in-memory source.

Each package has 3 versions (1.0.0, 1.1.0, 2.0.0) and depends on up to 3 packages further down
(a random DAG with a fixed seed), all with `^1`, so the resolver must skip 2.0.0 everywhere.
Reports seconds per size, the time per package, and the fitted growth exponent k of t ~ n^k
(least squares on log t vs log n). The peer, measured in the same run: resolvelib alone
(`fast=False`, no linear first pass) on the sizes in PEER_SIZES, which grows as n^2.
"""

from __future__ import annotations

import math
import os
import random
import time
from typing import Any

REGISTRY = "localhost:5000"
SIZES = tuple(
    int(s) for s in os.environ.get("EBPM_BENCH_RESOLVE_SIZES", "100,1000,10000").split(",")
)
PEER_SIZES = tuple(
    int(s) for s in os.environ.get("EBPM_BENCH_RESOLVE_PEER_SIZES", "100,300,1000").split(",")
)


def synthetic_graph(n: int, *, fanout: int = 3, seed: int = 42) -> dict[str, Any]:
    rng = random.Random(seed)
    graph: dict[str, Any] = {}
    for i in range(n):
        later = range(i + 1, n)
        picks = rng.sample(later, min(fanout, len(later))) if later else []
        deps = {f"p{j}": "^1" for j in picks}
        graph[f"{REGISTRY}/p{i}"] = {"1.0.0": deps, "1.1.0": deps, "2.0.0": deps}
    return graph


def resolve_once(n: int, *, fast: bool = True) -> tuple[float, int]:
    from ebpm.resolver.dependency import parse_dependencies
    from ebpm.resolver.resolve import resolve
    from ebpm.resolver.source import MemorySource

    graph = synthetic_graph(n)
    # The root asks for every package that nobody else requires (and p0).
    required = {d for versions in graph.values() for d in versions["1.0.0"]}
    roots = {f"p{i}": "^1" for i in range(n) if f"p{i}" not in required} | {"p0": "^1"}
    deps = parse_dependencies(roots, default_registry=REGISTRY)
    start = time.perf_counter()
    result = resolve(deps, MemorySource(graph), registry=REGISTRY, fast=fast)
    elapsed = time.perf_counter() - start
    assert len(result.packages) == n
    assert all(p.version == "1.1.0" for p in result.packages)
    return elapsed, len(result.packages)


CONFLICT_SIZES = tuple(
    int(s) for s in os.environ.get("EBPM_BENCH_RESOLVE_CONFLICT_SIZES", "100,300").split(",")
)


def resolve_conflicting(n: int) -> float:
    """Every package's newest version wants `base ^2` while the root pins `base ^1`: the fast
    pass fails at once and resolvelib backtracks once per package."""
    from ebpm.resolver.dependency import parse_dependencies
    from ebpm.resolver.resolve import resolve
    from ebpm.resolver.source import MemorySource

    graph: dict[str, Any] = {f"{REGISTRY}/base": {"1.0.0": {}, "2.0.0": {}}}
    for i in range(n):
        graph[f"{REGISTRY}/p{i}"] = {"1.0.0": {"base": "^1"}, "2.0.0": {"base": "^2"}}
    roots = {f"p{i}": "*" for i in range(n)} | {"base": "^1"}
    deps = parse_dependencies(roots, default_registry=REGISTRY)
    start = time.perf_counter()
    result = resolve(deps, MemorySource(graph), registry=REGISTRY)
    elapsed = time.perf_counter() - start
    assert all(p.version == "1.0.0" for p in result.packages)
    return elapsed


def fit_exponent(points: list[tuple[int, float]]) -> float:
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den if den else float("nan")


def main() -> list[str]:
    lines = ["resolve: synthetic DAGs, 3 versions each, fan-out 3, ranges ^1 (in-memory source)"]
    points: list[tuple[int, float]] = []
    for n in SIZES:
        elapsed, count = resolve_once(n)
        points.append((n, elapsed))
        base_n, base_t = points[0]
        lines.append(
            f"  n={n:>6}: {elapsed:8.3f} s  {elapsed / count * 1e6:8.1f} us/package  "
            f"x{elapsed / base_t:8.1f} time for x{n / base_n:g} packages"
        )
    if len(points) > 1:
        lines.append(f"  fitted growth exponent k (t ~ n^k): {fit_exponent(points):.2f}")
    fast_at = dict(points)
    peer: list[tuple[int, float]] = []
    lines.append("peer: resolvelib alone (fast=False)")
    for n in PEER_SIZES:
        elapsed, _ = resolve_once(n, fast=False)
        peer.append((n, elapsed))
        mine = fast_at.get(n) or resolve_once(n)[0]
        lines.append(
            f"  n={n:>6}: {elapsed:8.3f} s  ebpm resolve is x{elapsed / mine:.1f} faster"
        )
    if len(peer) > 1:
        lines.append(f"  fitted growth exponent k (t ~ n^k): {fit_exponent(peer):.2f}")
    lines.append("with a conflict in every package (fast pass fails, resolvelib backtracks)")
    conflicting = []
    for n in CONFLICT_SIZES:
        elapsed = resolve_conflicting(n)
        conflicting.append((n, elapsed))
        lines.append(f"  n={n:>6}: {elapsed:8.3f} s")
    if len(conflicting) > 1:
        lines.append(f"  fitted growth exponent k (t ~ n^k): {fit_exponent(conflicting):.2f}")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
