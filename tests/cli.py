"""Run the real ebpm CLI in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ebpm.cli import main

__all__ = ["Result", "ebpm"]


@dataclass
class Result:
    code: int
    out: str
    err: str


def ebpm(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(int(code or 0), captured.out, captured.err)
