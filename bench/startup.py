"""CLI start-up: `ebpm --version` and `ebpm --help` against `python -c pass`."""

from __future__ import annotations

from bench.common import EBPM, PYTHON, alternate, ratio_line, run_quiet

ROUNDS = 20


def main() -> list[str]:
    def bare() -> None:
        run_quiet([PYTHON, "-c", "pass"])

    def version() -> None:
        run_quiet([EBPM, "--version"])

    def helptext() -> None:
        run_quiet([EBPM, "--help"])

    for fn in (bare, version, helptext):  # warm the page cache
        fn()
    ours, peer = alternate(version, bare, ROUNDS)
    ours_help, peer_help = alternate(helptext, bare, ROUNDS)
    return [
        ratio_line("startup `ebpm --version` vs `python -c pass`", ours, peer, "python"),
        ratio_line("startup `ebpm --help` (click, lazy commands) vs `python -c pass`",
                   ours_help, peer_help, "python"),
    ]
