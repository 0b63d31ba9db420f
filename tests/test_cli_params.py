"""The lean entry (ebpm.cli.lean) parses the hot commands from the same declarations as the click
CLI: every command line it accepts must mean what it means to click, and whatever it is not
sure of goes to click (help, errors, unknown options)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from ebpm.cli.app import COMMANDS
from ebpm.cli.lean import HOT, hot_command, split
from ebpm.cli.params import Choice, Command, File, Float, Int, Option, parse, to_click


def _click_params(command: Command, args: list[str]) -> dict[str, Any]:
    ctx = to_click(command).make_context(command.name, list(args))
    return dict(ctx.params)


def _value(opt: Option, file: str, second: bool = False) -> str:
    kind = opt.type
    if isinstance(kind, Float):
        return "2.5" if second else "0.5"
    if isinstance(kind, Int):
        return "7" if second else "3"
    if isinstance(kind, Choice):
        return kind.choices[1 if second else 0]
    if isinstance(kind, File):
        return file
    return "b=2" if second else "a=1"


def _spellings(opt: Option, file: str, second: bool = False) -> list[list[str]]:
    """Every way to type one use of `opt`: `--opt`, `--opt value`, `--opt=value`."""
    if not opt.takes_value:
        return [[decl] for decl in opt.decls]
    value = _value(opt, file, second)
    out = [[decl, value] for decl in opt.decls]
    out += [[f"{decl}={value}"] for decl in opt.decls if decl.startswith("--")]
    return out


def _lines(command: Command, file: str) -> list[list[str]]:
    """Command lines using each option of `command`, in each spelling, before and after the
    target, repeated, with and without package arguments after `--`."""
    rest = any(a.rest for a in command.arguments)
    lines: list[list[str]] = []
    for opt in command.options:
        for used in _spellings(opt, file):
            for again in _spellings(opt, file, second=True)[:1]:
                lines += [
                    [*used, "T"], ["T", *used], ["T", *used, *again], [*used, "T", *again],
                    [*used, "--", "T"],
                ]
                if rest:
                    lines += [["T", *used, "--", "--pid", "42", "-h"],
                              [*used, "--", "T", "x", "--y"], ["T", *used, "--", "--", "z"]]
    lines += [["T"], ["--", "T"], ["T", "--"]]
    if rest:
        lines += [["-", "--", "-"]]
    return lines


@pytest.mark.parametrize("name", sorted(HOT))
def test_hot_commands_are_the_commands_table(name: str) -> None:
    assert COMMANDS[name][0] == HOT[name]
    command = hot_command(name)
    assert command is not None and to_click(command).name == name


@pytest.mark.parametrize("name", sorted(HOT))
def test_every_option_parses_as_click_parses_it(name: str, tmp_path: Path) -> None:
    command = hot_command(name)
    assert command is not None
    file = tmp_path / "f.btf"
    file.write_bytes(b"x")
    lines = _lines(command, str(file))
    # every option in every spelling, and pairs of different options
    options = [_spellings(opt, str(file))[0] for opt in command.options]
    lines += [["T", *a, *b] for a, b in itertools.combinations(options, 2)]
    if not command.arguments:  # a command without arguments (install): the same, without T
        lines = [[arg for arg in line if arg != "T"] for line in lines]
    assert len(lines) > 40
    for args in lines:
        ours = parse(command, args)
        assert ours is not None, args
        assert ours == _click_params(command, args), args


@pytest.mark.parametrize("args", [
    [], ["-h"], ["T", "--help"], ["T", "extra"], ["T", "--no-such"], ["T", "--pid", "1"],
    ["T", "--duration"], ["T", "--duration", "0"], ["T", "--duration", "x"],
    ["T", "--max-events", "0"], ["T", "--allow", "nope"], ["T", "--btf", "/no/such/file"],
    ["T", "--btf", "/"], ["T", "--json=1"], ["T", "--duration=-1"], ["T", "U"],
    ["T", "--duration", "nan"], ["T", "--duration", "inf"], ["T", "--interval", "NaN"],
])
def test_what_the_lean_parser_leaves_to_click(args: list[str]) -> None:
    """Help and every usage error go to click, which says what is wrong (a duration of nan or
    inf too: click's FloatRange took them, a run that never ended)."""
    command = hot_command("run")
    assert command is not None
    assert parse(command, args) is None
    if args in ([], ["-h"], ["T", "--help"]):
        return
    with pytest.raises(click.ClickException):
        _click_params(command, args)


def test_values_that_look_like_options_go_to_click() -> None:
    command = hot_command("run")
    assert command is not None
    assert parse(command, ["T", "--unit", "--json"]) is None
    assert _click_params(command, ["T", "--unit", "--json"])["unit"] == "--json"


def test_root_options_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert split(["--offline", "run", "T"])[0] is True  # type: ignore[index]
    assert split(["run", "T", "--offline"])[0] is True  # type: ignore[index]
    assert split(["run", "T"])[0] is False  # type: ignore[index]
    assert split(["-v", "run", "T"]) is None  # logging set up by the full CLI
    assert split(["--version"]) is None and split(["list"]) is None
    monkeypatch.setenv("EBPM_OFFLINE", "yes")
    assert split(["run", "T"])[0] is True  # type: ignore[index]
    monkeypatch.setenv("EBPM_OFFLINE", "maybe")
    assert split(["run", "T"]) is None  # click refuses it, and says so
    monkeypatch.delenv("EBPM_OFFLINE")
    monkeypatch.setenv("EBPM_CA_FILE", str(tmp_path / "missing.pem"))
    assert split(["run", "T"]) is None
    (tmp_path / "ca.pem").write_text("x")
    monkeypatch.setenv("EBPM_CA_FILE", str(tmp_path / "ca.pem"))
    found = split(["run", "T"])
    assert found is not None and found[2]["ca_file"] == str(tmp_path / "ca.pem")
    command = hot_command("run")
    assert command is not None
    assert _click_params(command, ["T"])["ca_file"] == str(tmp_path / "ca.pem")


def test_lean_run_imports_no_click(tmp_path: Path) -> None:
    """`ebpm run` of a package directory that is not there: the error comes from the run's own
    code on the lean path, and click is never imported (its help and errors still are click's:
    tests/test_cli_conventions.py)."""
    code = ("import sys\nfrom ebpm.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as exit:\n    code = exit.code\n"
            "print('click' in sys.modules, 'ebpm.cli.app' in sys.modules, code)")
    env = {k: v for k, v in os.environ.items() if k != "EBPM_OFFLINE"}
    out = subprocess.run([sys.executable, "-c", code, "run", str(tmp_path / "none.bpf.o")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["False", "False", "1"], out.stderr
    assert out.stderr.startswith("error: "), out.stderr
