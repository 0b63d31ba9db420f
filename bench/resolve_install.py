"""`ebpm install --frozen` of a 50-package signed lockfile from a loopback registry into an empty
store (signatures enforced), against crane in one process (`crane pull --format=oci` of the 50
references into one layout: no signature check), a shell loop of `crane pull`, a shell loop of
`oras pull` (one reference per process, each into a directory of its own) and a shell loop of
`skopeo copy` over the same 50 artifacts.

The graph: 50 packages in a layered DAG (each depends on up to 3 of the next ones), packed as
`ebpm push` packs them (the config and the 16 KiB layer embedded in the manifest's
descriptors, `data`, and pushed as blobs too: docs/format.md) and signed with `ebpm sign`;
every side pulls the same manifests (ebpm and crane take the config and the layer from the
manifest; skopeo 1.9.3 ignores `data` and fetches both blobs);
`ebpm lock` runs once, then the sides alternate from empty stores (ROUNDS rounds, the order
rotating each round; a line gives the spread of the per-round ratio against crane). Besides the
wall times (medians and ranges of both sides) it prints the CPU each side used (user+sys of the
process, median) and the CPU the registry spent serving it: on 2 cores the registry's CPU and
the client's compete, so a client that saves CPU saves wall time too. The last line is the
fixed part of an install: the same install --frozen with every package already in the store
(start-up, lock, checks, exit).

Every run writes into directories of its own, and all of them are removed only after the last
round, as a user's install does not follow a `rm -rf` of a store. This machine's root file
system is ext4 without a journal: there, each file created skips (and looks up) every inode of
its block group freed in the last 30 s (5.5 min while the freed inode's table block is not
written back yet; fs/ext4/ialloc.c recently_deleted()). Deleting the last run's store (~350
files) right before the next run made each of that run's file creations walk past them: ebpm
needed 329 ms of CPU instead of 209 (crane 111 instead of 100; ebpm creates more files), and
how much depended on what else the machine had deleted lately, e.g. a test suite run just
before. ext4 makes this check only without a journal (mkfs.ext4 makes one by default).
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.common import (
    EBPM,
    ROOT,
    alternate_many,
    ebpm_env,
    ms,
    publish,
    ratio_line,
    request_kinds,
    requests_of,
    run_quiet,
    timed,
    tool,
    version_of,
)

ROUNDS = 11
N = 50


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-install-"))
    reg = start_registry(root=work / "registry")
    runs = itertools.count()
    try:
        store, layout = work / "home", work / "layout"
        env = ebpm_env(EBPM_HOME=str(store), EBPM_CONFIG=str(work / "config"),
                       EBPM_REGISTRY=reg.host)
        run_quiet([EBPM, "key", "generate", "--trust", f"{reg.host}/**"], env=env)
        refs = []
        for i in range(N):
            deps = {f"bench-dep-{j}": "^1" for j in range(i + 1, min(i + 4, N))}
            refs.append(publish(reg.host, f"bench-dep-{i}", deps=deps))
        for ref in refs:
            run_quiet([EBPM, "sign", ref], env=env)
        app = work / "app"
        app.mkdir()
        (app / "ebpm.toml").write_text(
            '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\nbench-dep-0 = "^1"\n'
        )
        run_quiet([EBPM, "lock", "-C", str(app)], env=env)
        crane = tool("crane")
        install = [EBPM, "install", "--frozen", "-C", str(app)]

        def fresh() -> None:
            """New, empty directories for the next run (nothing is deleted until the end)."""
            nonlocal store, layout
            n = next(runs)
            store, layout = work / "runs" / f"home-{n}", work / "runs" / f"layout-{n}"

        cpu: dict[str, list[tuple[float, float]]] = {}
        sides = {"ebpm": _measured(cpu, "ebpm", reg.process.pid,
                                   lambda: run_quiet(install, env=dict(env,
                                                                       EBPM_HOME=str(store))))}
        versions = {"skopeo loop": version_of(("skopeo", "--version"))}
        if crane:
            pull = [crane, "pull", "--insecure", "--format=oci"]
            sides["crane in one process"] = _measured(
                cpu, "crane in one process", reg.process.pid,
                lambda: run_quiet([*pull, *refs, str(layout)]))
            sides["crane loop"] = _measured(
                cpu, "crane loop", reg.process.pid,
                lambda: run_quiet(["sh", "-e", "-c", "\n".join(
                    f"{' '.join(pull)} {r} {layout}" for r in refs)]))
            versions["crane in one process"] = versions["crane loop"] = (
                "crane " + version_of((crane, "version")))
        oras = tool("oras")
        if oras:  # (oras pulls one reference per process: a loop is how its users pull 50)
            sides["oras loop"] = _measured(
                cpu, "oras loop", reg.process.pid,
                lambda: run_quiet(["sh", "-e", "-c", "\n".join(
                    f"{oras} pull --plain-http -o {layout}/{i} {r}"
                    for i, r in enumerate(refs))]))
            versions["oras loop"] = "oras " + version_of((oras, "version"))
        sides["skopeo loop"] = _measured(
            cpu, "skopeo loop", reg.process.pid,
            lambda: subprocess.run(["sh", "-e", "-c", "\n".join(
                f"skopeo copy --quiet --src-tls-verify=false docker://{r} oci:{layout}:{i}"
                for i, r in enumerate(refs))], check=True, stdout=subprocess.DEVNULL))

        names = list(sides)
        fresh()
        asked = requests_of(["install", "--frozen", "-C", str(app)],
                            dict(env, EBPM_HOME=str(store)))
        times = alternate_many([sides[n] for n in names], ROUNDS, setup=fresh)
        lines = [f"peers: {'; '.join(f'{n}: {versions[n]}' for n in names[1:])} (the "
                 "packages embed their config and small layer in the manifest, `data`: ebpm "
                 "and crane read it, oras fetches the layer, skopeo ignores it and fetches the "
                 "blobs)",
                 f"requests of the signed install --frozen: {len(asked)} for {N} packages, "
                 f"{len(asked) / N:.1f} per package ({_summary(request_kinds(asked))}); "
                 f"crane: 2 per package (a /v2/ ping per image and the manifest, seen with "
                 f"crane -v), no signature check; oras: 2 (the manifest and the layer, seen "
                 f"with oras -d); skopeo: 4 (ping, manifest, config, layer)"]
        crane_side = names.index("crane in one process") if crane else None
        if crane_side is not None:  # each round's pair ran back to back: their ratio's spread
            ratios = sorted(a / b for a, b in zip(times[0], times[crane_side], strict=True))
            lines.append(
                f"per-round ratio vs crane in one process ({len(ratios)} rounds): min "
                f"{ratios[0]:.2f}x, quartiles {_quantile(ratios, 0.25):.2f}x / "
                f"{_quantile(ratios, 0.5):.2f}x / {_quantile(ratios, 0.75):.2f}x, max "
                f"{ratios[-1]:.2f}x; {sum(r < 1 for r in ratios)} of {len(ratios)} below 1x")
        for name, peer in zip(names[1:], times[1:], strict=True):
            target = 1.0 if name == "crane in one process" else None
            lines.append(ratio_line(f"install --frozen of {N} signed packages into an empty "
                                    f"store vs {name}", times[0], peer, name, target))
        lines.append("CPU per run (medians; user+sys of the client's processes / the "
                     "registry's while serving it): " + "; ".join(
                         f"{n} {_cpu_ms(cpu[n], 0)} / {_cpu_ms(cpu[n], 1)}" for n in names))
        fresh()
        env["EBPM_HOME"] = str(store)
        run_quiet(install, env=env)
        cached = [timed(lambda: run_quiet(install, env=env)) for _ in range(ROUNDS)]
        lines.append(f"install --frozen with all {N} packages already in the store (start-up, "
                     f"lock, the store's checks, exit): {ms(cached)}")
        return lines
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


def _registry_cpu(pid: int) -> float:
    """Seconds of CPU the registry process has used (utime + stime from /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measured(cpu: dict[str, list[tuple[float, float]]], name: str, registry: int,
              run: Callable[[], object]) -> Callable[[], object]:
    """`run`, recording the CPU its child processes used and the registry's CPU meanwhile."""
    def measured() -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        served = _registry_cpu(registry)
        run()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.setdefault(name, []).append(
            (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime,
             _registry_cpu(registry) - served))
    return measured


def _cpu_ms(values: list[tuple[float, float]], which: int) -> str:
    return f"{statistics.median(v[which] for v in values) * 1000:.0f} ms"


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values (linear between the two nearest)."""
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _summary(kinds: list[str]) -> str:
    from collections import Counter

    return ", ".join(f"{n} x {kind}" for kind, n in Counter(kinds).most_common())


if __name__ == "__main__":
    print("\n".join(main()))
