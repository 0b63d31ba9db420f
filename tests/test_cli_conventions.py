"""docs/cli.md, held against every command of the table (COMMANDS and their subcommands): help
with examples that name real options, usage errors exit 2, the global options and `-o json`
accepted on every command, `--json` on every command that lists or shows data, man pages."""

from __future__ import annotations

import shlex

import click
import pytest

from ebpm.cli.app import COMMANDS, ExitStatus, normalize_args
from ebpm.cli.manpages import page, walk
from tests.cli import ebpm

ALL = [(path, cmd) for path, cmd in walk() if path]  # every command but the root
# commands that list or show data: their output has a JSON form (docs/cli.md, "JSON")
SHOWS_DATA = {"list", "tags", "tree", "outdated", "ps", "search", "status", "version",
              "inspect", "verify", "logs"}


def _ids(item: tuple[list[str], click.Command]) -> str:
    return " ".join(item[0])


def test_the_table_and_the_walk_agree() -> None:
    assert {path[0] for path, _ in ALL} == set(COMMANDS)
    for name, (_, summary) in COMMANDS.items():
        assert summary.endswith(".") and len(summary) <= 80, name


def _option_names(cmd: click.Command) -> set[str]:
    names = {"-h", "--help"}
    for p in cmd.params:
        if isinstance(p, click.Option):
            names.update(p.opts + p.secondary_opts)
    return names


def _resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """The command an example names, and the words after its path."""
    from ebpm.cli.app import cli

    ctx = click.Context(cli, info_name="ebpm")
    cmd: click.Command = cli
    path: list[str] = []
    rest = list(words)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"no command {rest[0]!r} in {' '.join(['ebpm', *path])}"
        path.append(rest.pop(0))
        cmd = sub
    return path, cmd, rest


@pytest.mark.parametrize("item", ALL, ids=_ids)
def test_help_has_examples_that_name_real_options(item, capsys) -> None:
    path, cmd = item
    r = ebpm(capsys, *path, "--help")
    assert r.code == ExitStatus.OK and r.out.startswith(f"Usage: ebpm {' '.join(path)}"), r.err
    assert "Examples:" in r.out, f"ebpm {' '.join(path)} --help shows no examples"
    examples = r.out.split("Examples:", 1)[1].split("\n\n", 1)[0].strip().splitlines()
    checked = 0
    for line in examples:
        words = shlex.split(line, comments=True)
        for i, w in enumerate(words):  # the command ends at a redirection or a pipe
            if w in {"<", ">", ">>", "|", "&&", ";"}:
                words = words[:i]
                break
        if words and words[0] == "sudo":
            words = words[1:]
        if not words or words[0] != "ebpm":
            continue  # a shell line around ebpm (eval, source ...)
        checked += 1
        head = words[1:words.index("--")] if "--" in words else words[1:]
        head = normalize_args(head)  # global options move to the root
        root_opts = [w for w in head if w in {"-v", "-vv", "-vvv", "--verbose", "--offline"}]
        named, command, rest = _resolve([w for w in head if w not in root_opts])
        assert named == path or path[: len(named)] == named or named[: len(path)] == path, line
        known = _option_names(command)
        for word in rest:
            if word.startswith("-") and word != "-":
                assert word.split("=", 1)[0] in known, f"{line}: {word} is no option of it"
    assert checked, f"ebpm {' '.join(path)}: no example runs ebpm"


@pytest.mark.parametrize("item", ALL, ids=_ids)
def test_unknown_options_are_usage_errors(item, capsys) -> None:
    path, _ = item
    r = ebpm(capsys, *path, "--no-such-option")
    assert r.code == ExitStatus.USAGE, r.err
    assert "No such option" in r.err and "--no-such-option" in r.err


@pytest.mark.parametrize("item", ALL, ids=_ids)
def test_global_options_work_after_the_command(item, capsys) -> None:
    path, cmd = item
    r = ebpm(capsys, *path, "-vv", "--offline", "--help")
    assert r.code == ExitStatus.OK, r.err
    if "--json" in _option_names(cmd):
        for spelling in (["-o", "json"], ["--output=json"], ["--json"]):
            assert ebpm(capsys, *path, *spelling, "--help").code == ExitStatus.OK, spelling


@pytest.mark.parametrize("item", [i for i in ALL if isinstance(i[1], click.Group)], ids=_ids)
def test_group_help_summaries_are_whole(item) -> None:
    """`ebpm key --help` lists each subcommand's first sentence whole, never cut with '...'."""
    _, group = item
    assert isinstance(group, click.Group)
    limit = 78 - 6 - max(map(len, group.commands))  # click's, in an 80-column terminal
    for name, sub in group.commands.items():
        summary = sub.get_short_help_str(limit=limit)
        assert not summary.endswith("..."), f"{name}: {summary!r}: shorten its first sentence"


@pytest.mark.parametrize("item", [i for i in ALL if i[0][-1] in SHOWS_DATA], ids=_ids)
def test_commands_that_show_data_have_json(item) -> None:
    path, cmd = item
    assert "--json" in _option_names(cmd), f"ebpm {' '.join(path)} has no --json"


@pytest.mark.parametrize("item", ALL, ids=_ids)
def test_every_command_has_a_man_page(item) -> None:
    path, cmd = item
    text = page(path)
    title = "-".join(["ebpm", *path]).upper()
    assert text.startswith(f'.TH "{title}" "1"') and ".SH SYNOPSIS" in text
    assert ".SH EXAMPLES" in text or isinstance(cmd, click.Group) and ".SH COMMANDS" in text


def test_help_imports_no_command_module() -> None:
    import subprocess
    import sys

    code = ("import sys; from ebpm.cli import main; main(['--help']); "
            "print(sorted(m for m in sys.modules if m.startswith('ebpm.cli.')), file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == ("['ebpm.cli.app', 'ebpm.cli.examples', 'ebpm.cli.exits', "
                                  "'ebpm.cli.lean', 'ebpm.cli.params', 'ebpm.cli.startup']"
                                  )  # the entry (and its end, startup.freeze), no command


def test_o_with_anything_but_json_says_what_it_takes(capsys) -> None:
    """-o is --json's other spelling wherever a command has no -o of its own."""
    for line in (["hub", "list", "-o", "yaml"], ["hub", "list", "-o", "JSON"],
                 ["tree", "--output=yaml"], ["list", "-oyaml"]):
        r = ebpm(capsys, *line)
        assert r.code == ExitStatus.USAGE, line
        assert r.err.endswith("\nError: -o takes only json here (-o json or --json).\n"), r.err
    r = ebpm(capsys, "-o", "table", "tree")
    assert r.code == ExitStatus.USAGE and r.err.endswith(
        "\nError: -o takes only json, after a command that prints data (-o json or --json).\n")
    r = ebpm(capsys, "logout", "-o", "x")
    assert r.code == ExitStatus.USAGE and r.err.endswith(
        "\nError: 'ebpm logout' has no JSON output and no -o (--json and -o json are for "
        "commands that print data).\n"), r.err
    r = ebpm(capsys, "hub", "build", "-o", "json")  # (its -o is a directory)
    assert r.code == ExitStatus.USAGE and r.err.endswith(
        "\nError: Missing option '-o' / '--output'. -o json means --json: a directory or file "
        "named json is written -o ./json.\n"), r.err


def test_global_options_in_any_spelling_work_after_the_command(capsys) -> None:
    r = ebpm(capsys, "list", "-vvvv", "--json")
    assert (r.code, r.out) == (ExitStatus.OK, "[]\n"), r.err
    after, before = ebpm(capsys, "list", "--offline=1"), ebpm(capsys, "--offline=1", "list")
    assert after.code == before.code == ExitStatus.USAGE
    assert after.err == before.err and "'--offline' does not take a value" in after.err


def test_a_bad_value_from_the_environment_names_its_variable(capsys, monkeypatch) -> None:
    """The user typed no -j: the message names EBPM_JOBS (for every option an environment
    variable sets)."""
    r = ebpm(capsys, "install", "-j", "abc")
    assert r.code == ExitStatus.USAGE and "Invalid value for '-j' / '--jobs': 'abc'" in r.err
    monkeypatch.setenv("EBPM_JOBS", "abc")
    r = ebpm(capsys, "install")
    assert r.code == ExitStatus.USAGE and (
        "Error: Invalid value for EBPM_JOBS (the environment's value for '-j' / '--jobs'): "
        "'abc' is not") in r.err
    monkeypatch.setenv("EBPM_OFFLINE", "maybe")
    r = ebpm(capsys, "list")
    assert r.code == ExitStatus.USAGE and (
        "Error: Invalid value for EBPM_OFFLINE (the environment's value for '--offline'): "
        "'maybe' is not") in r.err


def test_a_command_that_contradicts_what_is_there_exits_2_with_an_error_and_a_hint(
        capsys, tmp_path) -> None:
    """docs/cli.md, exit status 2: not only click's usage errors, also a name or state the
    command line contradicts (here a directory that exists), as `error:` and `hint:`."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "x").write_text("")
    r = ebpm(capsys, "init", "demo", "--dir", str(tmp_path / "demo"))
    assert r.code == ExitStatus.USAGE
    lines = r.err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
