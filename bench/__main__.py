"""Run the benchmarks: every bench/<name>.py module with a main() -> list[str] of result lines.

`python -m bench` runs all; `python -m bench pull startup` runs some.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import prepare


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))
    if argv:
        unknown = set(argv) - set(names)
        if unknown:
            print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(names)}")
            return 2
        names = [n for n in names if n in argv]
    # Users run ebpm from cached bytecode: compile it once here and let no run recompile
    # (this environment sets PYTHONDONTWRITEBYTECODE=1, which would make every start pay).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # ... and its PYTHONUNBUFFERED=1 would make every line a Python tool prints a write of its
    # own (users' stdout into a pipe is block-buffered; ebpm run writes out each batch)
    os.environ.pop("PYTHONUNBUFFERED", None)
    # The CO-RE cache the benches' runs make is theirs (bench/run.py empties or fills its own):
    # nothing is left under /run/ebpm when they end
    cache = tempfile.mkdtemp(prefix="ebpm-bench-core-")
    os.environ["EBPM_CORE_CACHE"] = cache
    try:
        return _run(names)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _run(names: list[str]) -> int:
    prepare()
    print(f"# {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}: shared machine, "
          "figures are noisy; sides alternate, medians", flush=True)
    print(f"# ebpm's Python: {sys.version.split()[0]} from {sys.base_prefix} (the venv's)",
          flush=True)
    failed = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "main"):
            continue
        print(f"# bench/{name}.py", flush=True)
        start = time.monotonic()
        try:
            for line in module.main():
                print(line, flush=True)
        except Exception as err:  # one broken bench must not hide the others
            failed += 1
            print(f"{name}: FAILED: {type(err).__name__}: {err}", flush=True)
        print(f"# ({time.monotonic() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
