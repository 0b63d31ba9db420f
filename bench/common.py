"""Helpers shared by the benchmarks: timing whole commands and reporting medians, ranges, peer
versions and ratios.

Fairness rules every bench follows (issue 18):
- ebpm's modules are byte-compiled once at set-up (`prepare()`), and ebpm's runs get an
  environment without PYTHONDONTWRITEBYTECODE (`ebpm_env()`), so no run pays recompilation --
  users run from cached .pyc too.
- The two sides alternate, several rounds, and lines show medians, ranges and the peer's version.
- The machine is shared (2 cores, other engineers' tests): figures are noisy; compare the ratio.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
EBPM = str(VENV_BIN / "ebpm")


def prepare() -> None:
    """Byte-compile ebpm (what an installed package has) so that no timed run compiles."""
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "ebpm")], check=True,
                   stdout=subprocess.DEVNULL, env=ebpm_env())


def ebpm_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a timed ebpm run: cached bytecode allowed."""
    env = dict(os.environ if base is None else base, **extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def tool(name: str) -> str | None:
    """A peer binary: shared/tools/bin beside the project (or a folder above it), else PATH."""
    for folder in ROOT.parents:
        path = folder / "shared" / "tools" / "bin" / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return shutil.which(name)


@functools.cache
def version_of(cmd: tuple[str, ...]) -> str:
    """The first line a peer prints for its version command (or 'unknown')."""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = [line.strip() for line in (out.stdout or out.stderr).strip().splitlines()]
    for line in text:  # cosign prints a banner first, then "GitVersion: v2..."
        if line.startswith(("GitVersion:", "Version:")):
            return " ".join(line.split(":", 1)[1].split())
    return " ".join(text[0].split()) if text else "unknown"


def run_quiet(cmd: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if proc.returncode:
        err = proc.stderr.decode(errors="replace").strip()[-400:]
        raise RuntimeError(f"{' '.join(cmd[:3])}...: exit {proc.returncode}: {err}")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alternate(a: Callable[[], object], b: Callable[[], object], rounds: int,
              setup: Callable[[], object] | None = None) -> tuple[list[float], list[float]]:
    """Time a and b alternately, `rounds` times each (setup before every run)."""
    ta, tb = alternate_many([a, b], rounds, setup)
    return ta, tb


def alternate_many(fns: Sequence[Callable[[], object]], rounds: int,
                   setup: Callable[[], object] | None = None) -> list[list[float]]:
    """Time every fn in turn, `rounds` rounds (the order rotates each round; setup before each
    run, untimed)."""
    out: list[list[float]] = [[] for _ in fns]
    for r in range(rounds):
        order = list(range(len(fns)))
        order = order[r % len(fns):] + order[:r % len(fns)]
        for i in order:
            if setup:
                setup()
            out[i].append(timed(fns[i]))
    return out


def ms(values: list[float]) -> str:
    """'median ms (range lo-hi)'."""
    return (f"{statistics.median(values) * 1000:.1f} ms "
            f"(range {min(values) * 1000:.1f}-{max(values) * 1000:.1f})")


def ratio_line(label: str, ours: list[float], peer: list[float], peer_name: str,
               target: float | None = None) -> str:
    """One comparison: medians, ranges, the ratio, and the target when there is one."""
    mo, mp = statistics.median(ours), statistics.median(peer)
    line = (f"{label}: ebpm {ms(ours)}, {peer_name} {ms(peer)}, ratio {mo / mp:.2f}x "
            f"(medians of {len(ours)})")
    if target is not None:
        line += f"; target <= {target:g}x: {'MET' if mo / mp <= target else 'NOT MET'}"
    return line


def publish(host: str, name: str, *, size: int = 16 * 1024,
            deps: dict[str, str] | None = None) -> str:
    """Push an unsigned package NAME:1.0.0 with one random object layer of `size` bytes;
    returns its reference (sign it with `ebpm sign REF`)."""
    from ebpm.access import registry_for
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
    from ebpm.package import PackageConfig

    client = registry_for(host)
    config = PackageConfig(name=name.rsplit("/", 1)[-1], version="1.0.0",
                           dependencies=deps or {})
    art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "x.bpf.o", os.urandom(size))],
               annotations={"org.opencontainers.image.version": "1.0.0"})
    for blob in art.blobs:
        client.push_blob(name, blob.descriptor.digest, blob.data)
    client.put_manifest(name, "1.0.0", art.manifest_bytes, MANIFEST_V1)
    return f"{host}/{name}:1.0.0"


_COUNT_REQUESTS = """
import logging, sys
count = []
class H(logging.Handler):
    def emit(self, record):
        count.append(record.getMessage())
log = logging.getLogger("ebpm.oci.transport")
log.setLevel(logging.DEBUG)
log.addHandler(H())
from ebpm.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("\\n".join(m for m in count if " -> " in m))
"""


def requests_of(args: list[str], env: dict[str, str]) -> list[str]:
    """The HTTP requests `ebpm ARGS` makes, as the transport logs them ("GET URL -> 200")."""
    out = subprocess.run([PYTHON, "-c", _COUNT_REQUESTS, *args], env=env, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.split("\n")
            if line.split(" ", 1)[0] in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            and " -> " in line]


def request_kinds(lines: list[str]) -> list[str]:
    """What each logged request was for ("manifest 200", "blob 200", "referrers 404", ...)."""
    kinds = []
    for line in lines:
        path = line.split(" ", 2)[1].split("/v2/", 1)[-1]
        what = {"manifests": "manifest", "blobs": "blob"}.get(path.split("/")[-2], "other")
        if path.endswith(".sig"):
            what = "signature manifest"
        elif "/sha256-" in path:
            what = "referrers fallback tag"
        elif "/referrers/" in path:
            what = "referrers API"
        kinds.append(f"{what} {line.rsplit(' ', 1)[-1]}")
    return kinds
