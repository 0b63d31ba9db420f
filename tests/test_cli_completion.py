"""Shell completion through the real bash and `ebpm completion bash`'s script: it offers the
global options wherever the parser takes them (ebpm.cli.completion), and nothing it refuses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent  # the venv's `ebpm`, which the script runs

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or not (BIN / "ebpm").exists(),
                                reason="needs bash and the ebpm console script")


def complete(*words: str) -> list[str]:
    """What bash offers for `ebpm WORDS<TAB>`: the last word is the one being completed, the
    words as readline splits them (`--output=` is `--output`, `=`, '')."""
    line = ('eval "$(ebpm completion bash)"; COMP_WORDS=(ebpm "$@"); COMP_CWORD=$#; '
            '_ebpm_completion ebpm; printf "%s\\n" "${COMPREPLY[@]}"')
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    out = subprocess.run(["bash", "--norc", "-c", line, "bash", *words], env=env,
                         capture_output=True, text=True, timeout=60)
    # (the script's compopt, for file names, complains outside a real completion: not ebpm)
    said = [line for line in out.stderr.splitlines() if "compopt:" not in line]
    assert out.returncode == 0 and not said, out
    return [word for word in out.stdout.splitlines() if word]


def test_global_options_after_a_command() -> None:
    offered = complete("pull", "--")
    assert {"--verbose", "--offline", "--json", "--allow-unsigned"} <= set(offered), offered
    assert "--version" not in offered  # refused after a command
    offered = complete("trust", "add", "-")  # a group's subcommand
    assert {"-v", "--verbose", "--offline", "--key"} <= set(offered), offered
    assert {"-v", "--offline"} <= set(complete("trust", "-"))  # (`ebpm trust -v add`)
    assert complete("tags", "--of") == ["--offline"]


def test_o_json_offered_where_o_means_json() -> None:
    offered = complete("list", "-")
    assert {"-o", "--output", "--json", "-v"} <= set(offered), offered
    assert complete("list", "-o", "") == ["json"]
    assert complete("list", "-o", "j") == ["json"]
    assert complete("list", "--output", "=", "") == ["json"]  # --output=<TAB>
    assert complete("list", "-o", "x") == []
    assert complete("-v", "list", "--offline", "-o", "") == ["json"]


def test_refused_options_not_offered() -> None:
    assert not {"--json", "-o", "--output"} & set(complete("cache", "dir", "-"))  # no JSON
    assert complete("cache", "dir", "-o", "") == []
    assert not {"--json", "-o"} & set(complete("-"))  # the root takes them only before one
    # already given, here or before the command (as click does for the command's own options)
    assert not {"--json", "-o", "--output"} & set(complete("list", "-o", "json", "-"))
    assert "--offline" not in complete("--offline", "list", "-")
    assert "--offline" not in complete("list", "--offline", "-")
    # pull's -o is its own (a directory): `json` is no value of it, -o offered once
    assert "json" not in complete("pull", "-o", "")
    assert complete("pull", "-").count("-o") == 1
    # after `--` the words are the package's (run) or refused (pull)
    assert complete("run", "x", "--", "-") == []
    assert complete("pull", "x", "--", "--") == []
    assert "json" not in complete("run", "x", "--", "-o", "")


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_other_shells_get_them_too(shell: str) -> None:
    """zsh and fish (not installed here) ask through the same variables, with help texts."""
    cword = "2" if shell == "zsh" else "--off"  # (fish's is the word itself)
    env = dict(os.environ, _EBPM_COMPLETE=f"{shell}_complete", COMP_WORDS="ebpm pull --off",
               COMP_CWORD=cword)
    out = subprocess.run([sys.executable, "-m", "ebpm"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert "--offline" in out.stdout and "Make no network call" in out.stdout, out


def test_an_unknown_command_offers_nothing_and_prints_nothing() -> None:
    """(was click's usage error printed into the line being typed, exit 2)"""
    assert complete("lsit", "") == [] and complete("nosuch", "-") == []
