"""The CLI's frame: every registered command loads, help and version, exit statuses, and the
one path by which errors leave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import FrameType

import click
import pytest

from ebpm import __version__
from ebpm.cli.app import COMMANDS, LazyGroup, cli
from tests.cli import ebpm


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_registered_command_loads(name: str) -> None:
    command = LazyGroup._load(name)
    assert isinstance(command, click.Command)
    assert command.help, f"{name} has no help text"


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys\nfrom ebpm.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('ebpm.cli.') and "
        "m not in ('ebpm.cli.app', 'ebpm.cli.examples', 'ebpm.cli.lean', 'ebpm.cli.params', "
        "'ebpm.cli.exits', 'ebpm.cli.startup'))\nprint('LOADED', loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    for name in COMMANDS:
        assert f"\n  {name} " in out
    assert "LOADED []" in out


def test_version(capsys) -> None:
    assert ebpm(capsys, "--version").out == f"ebpm {__version__}\n"
    out = subprocess.run([sys.executable, "-m", "ebpm", "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out == f"ebpm {__version__}\n"


def test_version_with_more_is_a_usage_error(capsys) -> None:
    assert ebpm(capsys, "-v", "--offline", "--version").out == f"ebpm {__version__}\n"
    r = ebpm(capsys, "--version", "extra")
    assert r.code == 2 and r.out == "" and r.err.endswith(
        "\nError: --version takes no command or argument (got 'extra'); `ebpm version` shows "
        "what ebpm runs with.\n")
    r = ebpm(capsys, "--version", "--json")
    assert r.code == 2 and r.err.endswith(
        "\nError: --json and -o json go after a command that prints data "
        "(`ebpm version --json`: ebpm's versions).\n"), r.err


def test_usage_errors_exit_2(capsys) -> None:
    r = ebpm(capsys, "no-such-command")
    assert r.code == 2 and "No such command" in r.err
    r = ebpm(capsys, "pull")
    assert r.code == 2 and "Missing argument" in r.err


def test_unexpected_errors_get_a_hint_and_debug_a_traceback(capsys, monkeypatch) -> None:
    @cli.command("explode")
    def explode() -> None:
        raise RuntimeError("boom")

    try:
        r = ebpm(capsys, "explode")
        assert r.code == 1
        assert r.err == ("error: unexpected RuntimeError: boom\n"
                         "hint: run again with EBPM_DEBUG=1 for a traceback, and report it\n")
        monkeypatch.setenv("EBPM_DEBUG", "1")
        with pytest.raises(RuntimeError, match="boom"):
            from ebpm.cli import main

            main(["explode"])
    finally:
        cli.commands.pop("explode", None)


def test_a_ctrl_c_while_starting_waits_for_a_safe_point() -> None:
    """ebpm.cli.main holds SIGINT during its imports (ebpm.interrupts): remembered, raised
    when the command starts (release), or handed to `ebpm run`'s own stop (take)."""
    import os
    import signal

    from ebpm import interrupts

    before = signal.getsignal(signal.SIGINT)
    interrupts.hold()
    os.kill(os.getpid(), signal.SIGINT)  # delivered at once, to the main thread: remembered
    with pytest.raises(KeyboardInterrupt):
        interrupts.release()
    assert signal.getsignal(signal.SIGINT) is before
    interrupts.hold()
    os.kill(os.getpid(), signal.SIGINT)
    assert interrupts.take() and not interrupts.take()
    interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("command", ["list", "run"])
def test_a_ctrl_c_before_the_hold_is_in_place_ends_as_interrupted(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A SIGINT in the first moments of `ebpm.cli.main`, before its hold is in place (here as
    `interrupts.hold` is called: by the handler or in the kernel, for `ebpm run`), ends the
    command as a later one would: "interrupted", 130. It was Python's traceback."""
    import os
    import signal
    import sys

    from ebpm import interrupts
    from ebpm.cli import main

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code is interrupts.hold.__code__:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # (Python's own)
    sys.setprofile(hook)
    try:
        assert main([command, "--help"]) == 130
    finally:
        sys.setprofile(None)
        signal.signal(signal.SIGINT, before)
    assert capsys.readouterr().err == "interrupted\n"
    assert not interrupts.blocked()


def test_a_ctrl_c_that_a_callback_swallowed_still_ends_the_command(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A Ctrl-C whose KeyboardInterrupt lands in a callback (here a weakref's, as an import
    drops its module lock: `ebpm pull` imports while it fetches) is only reported by Python,
    "Exception ignored in ...", and the command went on (a pull ended 0). `ebpm.cli.main`
    raises it once more: the command ends "interrupted", 130, before its wait is over."""
    import signal
    import weakref
    from _thread import allocate_lock

    from ebpm import interrupts
    from ebpm.cli import main

    never = allocate_lock()
    never.acquire()
    reached: list[str] = []

    @cli.command("slow")
    def slow() -> None:
        interrupts.release()  # (as a command does when it starts: Ctrl-C is Python's again)

        class Lock:
            pass

        lock = Lock()
        ref = weakref.ref(lock, lambda _: signal.raise_signal(signal.SIGINT))
        del lock  # (the callback: Python's handler raises in it, as raise_signal returns)
        reached.append("callback over")
        never.acquire(timeout=30)  # (a registry that holds its answer back)
        reached.append("answered" if ref() is None else "")

    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # (Python's own)
    try:
        assert main(["slow"]) == 130
    finally:
        signal.signal(signal.SIGINT, before)
        cli.commands.pop("slow", None)
    assert reached == ["callback over"]
    assert capsys.readouterr().err.strip() == "interrupted"  # (no "Exception ignored")


def test_a_sigterm_ends_a_command_through_its_cleanup(tmp_path: Path) -> None:
    """SIGTERM to a command that has started (`interrupts.release`) ends it as Ctrl-C does,
    through every `finally` (here a temporary directory, as `ebpm build` makes), with exit
    status 143. Its default action killed the process on the spot: a build left
    /tmp/ebpm-build-* and /tmp/ebpm-sidecar-* behind."""
    code = (
        "import os, signal, sys, tempfile\n"
        "from ebpm import interrupts\n"
        "from ebpm.cli import main\n"
        "from ebpm.cli.app import cli\n"
        "@cli.command('slow')\n"
        "def slow():\n"
        "    interrupts.release()  # (as a command does when it starts)\n"
        "    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as d:\n"
        "        open(os.path.join(d, 'half'), 'w').close()\n"
        "        signal.raise_signal(signal.SIGTERM)\n"
        "        print('not reached')\n"
        "sys.exit(main(['slow']))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (143, ""), proc.stderr
    assert list(tmp_path.iterdir()) == []
    assert "Traceback" not in proc.stderr


def test_a_ctrl_c_just_as_the_hold_begins_is_remembered() -> None:
    """A SIGINT that lands once the holding handler is installed but before hold() returns
    is remembered. hold() used to clear the flag after installing the handler, so a Ctrl-C in
    that window was lost, and `ebpm run` never stopped: the hundred-signals test
    (tests/loader/test_loader_signals.py) hung twice in clean-clone runs, on a SIGINT 50 ms in.
    The signal is sent by the real kill(2), from a profile hook, the moment the C call that
    installs the handler returns."""
    import _signal
    import os
    import signal
    import sys

    from ebpm import interrupts

    before = signal.getsignal(signal.SIGINT)

    def hook(frame: object, event: str, arg: object) -> None:
        if event == "c_return" and arg is _signal.signal:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)

    sys.setprofile(hook)
    try:
        interrupts.hold()
    finally:
        sys.setprofile(None)
    assert interrupts.take()
    interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_ctrl_c_during_the_release_is_raised() -> None:
    """The same window at the other end: a SIGINT while release() hands the handler back (here
    as its check of the flag returns) is raised, not dropped with the flag."""
    import os
    import signal
    import sys

    from ebpm import interrupts

    before = signal.getsignal(signal.SIGINT)

    def hook(frame: FrameType, event: str, arg: object) -> None:
        if event == "return" and frame.f_code is interrupts.take.__code__:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)

    interrupts.hold()
    sys.setprofile(hook)
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupts.release()
    finally:
        sys.setprofile(None)
        interrupts.restore()
    assert signal.getsignal(signal.SIGINT) is before


MANIFEST = '[package]\nname = "demo"\nversion = "0.1.0"\n'


def test_paths_the_machine_refuses_are_one_line_naming_the_path(capsys, tmp_path: Path,
                                                               ebpm_env: Path,
                                                               monkeypatch) -> None:
    """No "unexpected ... report it" for a path that cannot be made, a directory where a
    file belongs (or a file where a directory does), a symbolic link loop; the hint names the
    variable whose directory holds the path, else no variable."""
    r = ebpm(capsys, "man", "--dir", "/proc/ebpm-man")
    assert (r.code, r.err.splitlines()[0]) == (1, "error: no such file or directory: "
                                                  "/proc/ebpm-man")
    assert "give another path" in r.err and "EBPM_" not in r.err and "report" not in r.err
    project = tmp_path / "project"
    project.mkdir()
    (project / "ebpm.toml").write_text(MANIFEST)
    (project / "ebpm.lock").mkdir()
    r = ebpm(capsys, "lock", "-C", str(project))
    assert r.code == 1 and r.err.splitlines()[0] == f"error: is a directory: {project}/ebpm.lock"
    assert r.err.count("\n") == 2 and "EBPM_" not in r.err, r.err
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "ebpm.toml").symlink_to("again")
    (loop / "again").symlink_to("ebpm.toml")
    r = ebpm(capsys, "lock", "-C", str(loop))
    assert r.code == 1 and r.err.startswith(
        f"error: too many levels of symbolic links: {loop}/ebpm.toml\nhint: "), r.err
    data = tmp_path / "data-file"
    data.write_text("")
    monkeypatch.setenv("EBPM_DATA", str(data))
    r = ebpm(capsys, "registry", "status")
    assert r.code == 1 and r.err.splitlines() == [
        f"error: not a directory: {data}",
        "hint: a file stands where a directory belongs: move it away, or point EBPM_DATA at "
        "another directory"]
    (ebpm_env / "ebpm" / "hub").mkdir(parents=True)
    (ebpm_env / "ebpm" / "hub" / "index.json").mkdir()
    r = ebpm(capsys, "hub", "list")
    assert r.code == 1 and r.err.splitlines() == [
        f"error: is a directory: {ebpm_env}/ebpm/hub/index.json",
        "hint: a directory stands where a file belongs: move it away, or point EBPM_HOME at "
        "another directory"]


def test_a_read_only_directory_is_named_with_the_file_being_written(capsys, tmp_path: Path
                                                                   ) -> None:
    """`ebpm lock` in a read-only project names ebpm.lock, not its temp file, and the
    directory rather than EBPM_HOME."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "ebpm.toml").write_text(MANIFEST)
    if subprocess.run(["mount", "--bind", project, project], capture_output=True).returncode:
        pytest.skip("no bind mounts here (not root, or no mount namespace of our own)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", project], check=True)
        r = ebpm(capsys, "lock", "-C", str(project))
    finally:
        subprocess.run(["umount", project], check=True)
    assert r.code == 1 and r.err.splitlines() == [
        f"error: read-only file system: {project}/ebpm.lock",
        f"hint: {project} takes no writes: remount it read-write, or work in a writable "
        "directory"], r.err


def _to_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """`ebpm ARGS | head -0` under `set -o pipefail`: stdout's reader gone before ebpm writes."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run([sys.executable, "-m", "ebpm", *args], stdout=writer,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writer)


@pytest.mark.parametrize("args", [["--help"], ["man", "push"], ["list", "--json"]], ids=" ".join)
def test_a_closed_pipe_ends_the_command_with_0_and_nothing_said(args: list[str]) -> None:
    r = _to_a_closed_pipe(*args)
    assert (r.returncode, r.stderr) == (0, "")

