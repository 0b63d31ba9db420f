"""ebpm/cli/startup.py: the garbage collector is told to leave alone what lives as long as the
process: after the start-up imports (`freeze()`) and when the command is over (`freeze()` again,
once, where `ebpm.cli.main` returns, on every path)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

_PROBE = """
import gc, sys
from ebpm.cli import main
made = [[] for _ in range(1000)]  # tracked objects alive when the command ends
before = gc.get_freeze_count()
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(gc.get_freeze_count() - before >= len(made))
"""


def _frozen_at_the_end(*args: str) -> bool:
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                         text=True, check=True).stdout.split()
    return out[-1] == "True"


def test_the_end_of_a_command_freezes_what_is_alive_on_every_path() -> None:
    assert _frozen_at_the_end("no-such-command")  # click's usage error, no command loaded
    assert _frozen_at_the_end("install", "-C", "/nonexistent/ebpm-project")  # lean, an error
    assert _frozen_at_the_end("version")  # a command that succeeds


_FIRST_LINE = """
import gc, sys
made = [[] for _ in range(1000)]  # tracked objects made before ebpm (the console script's)
seen = []

def audit(event, args):
    if event == "import" and args[0] == "ebpm.cli.lean" and not seen:
        seen.append(gc.get_freeze_count())

sys.addaudithook(audit)
from ebpm.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(seen[0] >= len(made))
"""


def test_what_the_start_imported_is_frozen_before_ebpms_own_imports() -> None:
    """`ebpm.cli.main`'s first line freezes what Python's start and the console script made
    (before the lean entry's imports), so the collections the start-up triggers skip it."""
    out = subprocess.run([sys.executable, "-c", _FIRST_LINE, "no-such-command"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "True"


def test_the_installed_console_script_imports_nothing_before_ebpm() -> None:
    """scripts/bootstrap.sh lays the venv out as `pipx install` does: a current pip writes the
    `ebpm` script without pip 23's `import re` (5 ms before ebpm's first line, where a Ctrl-C
    also escapes ebpm's hold), and without setuptools no .pth file imports _distutils_hack at
    every start."""
    bindir = Path(sys.executable).parent
    script = (bindir / "ebpm").read_text()
    imports = [line.split()[1] for line in script.splitlines()
               if line.startswith(("import ", "from "))]
    assert imports == ["sys", "ebpm.cli"], script
    started = subprocess.run([sys.executable, "-c", "import sys; print(sorted(sys.modules))"],
                             capture_output=True, text=True, check=True).stdout
    assert "_distutils_hack" not in started and "'re'" not in started


def test_the_venv_is_made_from_debians_own_python_where_there_is_one() -> None:
    """scripts/bootstrap.sh makes the venv from /usr/bin/python3 (Debian's, built with PGO and
    LTO, as apt's pipx takes it) rather than the first python3 on PATH (a CPython built
    without them starts and imports ~15% slower: docs/architecture.md, "Rules")."""
    debian = Path("/usr/bin/python3")
    if not debian.exists() or "PYTHON" in os.environ:
        pytest.skip("no /usr/bin/python3 here, or PYTHON= chose the venv's Python")
    made_from = subprocess.run([str(debian), "-c", "import sys; print(sys.base_prefix)"],
                               capture_output=True, text=True, check=True).stdout.strip()
    assert sys.base_prefix == made_from, (sys.base_prefix, made_from)


_COLLECTOR = """
import gc, sys
seen = {}

def audit(event, args):
    if event == "import" and args[0] == "ebpm.cli.lean":
        seen.setdefault(args[0], gc.isenabled())

sys.addaudithook(audit)
from ebpm.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(seen.get("ebpm.cli.lean"), gc.isenabled())
"""


def test_the_cycle_collector_is_off_for_the_start_up_and_on_when_main_returns() -> None:
    """`pause()` at `ebpm.cli.main`'s first line, `resume()` at its end, on every path (a
    click usage error, a click command, a lean command's error)."""
    for args in (["no-such-command"], ["version"], ["install", "-C", "/nonexistent/ebpm-x"]):
        out = subprocess.run([sys.executable, "-c", _COLLECTOR, *args], capture_output=True,
                             text=True, check=True).stdout.split()
        assert out[-2:] == ["False", "True"], (args, out)


def test_a_command_works_with_the_collector_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the start-up hands over to the command's work, the collector is on again: a
    click command (its loading), `ebpm run --detach` and `--agent` (before they call the
    agent), `ebpm run X -- -h` (before the help is printed; tests/loader/test_loader_registry.py
    checks a run: off when libbpf's load starts, on once it runs)."""
    import gc

    import ebpm.cli.about
    import ebpm.cli.exits
    import ebpm.cli.params
    import ebpm.run
    from ebpm.cli import main
    from ebpm.errors import UnreachableError

    seen: dict[str, bool] = {}
    monkeypatch.setattr(ebpm.cli.about.version, "callback",
                        lambda **_: seen.setdefault("version", gc.isenabled()))

    def agent(name: str) -> Callable[..., None]:
        def client_from(*_: object) -> None:
            seen[name] = gc.isenabled()
            raise UnreachableError("no agent here")
        return client_from

    def echo(text: str = "", *, err: bool = False) -> None:
        if text == "the package's flags":
            seen.setdefault("help", gc.isenabled())

    def help_for(*_: object, **__: object) -> str:
        return "the package's flags"

    def open_for_run(*_: object, **__: object) -> object:
        return object()

    def call(*args: str) -> None:
        try:
            main(list(args))
        except SystemExit:  # (the lean entry's error path exits)
            pass

    try:
        call("version")
        monkeypatch.setattr(ebpm.cli.params, "client_from", agent("detach"))
        call("run", "--detach", "--agent", "/nonexistent/agent.sock", "pkg")
        monkeypatch.setattr(ebpm.cli.params, "client_from", agent("agent"))
        call("run", "--agent", "/nonexistent/agent.sock", "pkg")
        monkeypatch.setattr(ebpm.run, "open_for_run", open_for_run, raising=False)
        monkeypatch.setattr(ebpm.run, "help_for", help_for, raising=False)
        monkeypatch.setattr(ebpm.cli.exits, "echo", echo)
        call("run", "pkg", "--", "-h")
    finally:
        gc.enable()
    assert seen == {"version": True, "detach": True, "agent": True, "help": True}


def test_a_command_is_invoked_with_the_collector_on_unless_it_resumes_it_itself() -> None:
    """A declared command's work starts with the collector on (`Command.invoke`), except one
    that turns it on itself where its start-up ends (`resumes`: `ebpm run`); a collector an
    in-process caller turned off stays off."""
    import gc

    from ebpm.cli import startup
    from ebpm.cli.params import Command

    seen: list[bool] = []
    try:
        for resumes in (False, True):
            startup.pause()
            try:
                Command("probe", lambda: seen.append(gc.isenabled()), params=[], help="",
                        signals=True, resumes=resumes).invoke({})
                seen.append(gc.isenabled())
            finally:
                startup.resume()
        assert seen == [True, True, False, False] and gc.isenabled()
        gc.disable()  # the caller's choice
        startup.pause()
        startup.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()


# Ctrl-C held in the kernel (`ebpm.interrupts.hold(in_kernel=True)`, `ebpm run`'s): SIGINT
# blocked with pthread_sigmask, which threads and child processes inherit. Every way out of it
# unblocks, and what a child started afterwards sees is read from its /proc/self/status (a
# child made with posix_spawn: os.system would set SIGINT to SIG_IGN meanwhile, which drops a
# pending one, and subprocess imports `signal`).
_HELD = """
import os, sys
from ebpm import interrupts

def child_blocks_sigint() -> bool:
    out = f"/tmp/ebpm-sigblk-{os.getpid()}"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid = os.posix_spawn("/bin/cat", ["cat", "/proc/self/status"], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
    os.waitpid(pid, 0)
    os.close(fd)
    with open(out) as f:
        status = f.read()
    os.unlink(out)
    line = next(x for x in status.splitlines() if x.startswith("SigBlk:"))
    mask = int(line.split()[1], 16)
    both = mask & (1 << (2 - 1)) and mask & (1 << (15 - 1))  # SIGINT and SIGTERM
    assert both or not mask & (1 << (2 - 1) | 1 << (15 - 1)), hex(mask)  # never one alone
    return bool(both)

way = sys.argv[1]
interrupts.hold(in_kernel=True)
held = interrupts.blocked() and child_blocks_sigint() and not interrupts.pending()
os.kill(os.getpid(), 2)  # a Ctrl-C while held: pending in the kernel
held = held and interrupts.pending() and "signal" not in sys.modules
outcome = "nothing"
try:
    if way == "release":
        interrupts.release()
    elif way == "restore":
        interrupts.restore()
    elif way == "hold":  # the hand-over to click: the handler holds it from here
        interrupts.hold()
        outcome = f"remembered {interrupts.take()}"
    else:  # `take`, after the caller's own handler is in place (ebpm.run.native.SignalStop)
        import signal
        got = []
        signal.signal(signal.SIGINT, lambda *_: got.append(1))
        outcome = f"taken {interrupts.take()} handled {got}"
except KeyboardInterrupt:
    outcome = "raised"
print(held, interrupts.blocked() or child_blocks_sigint(), outcome)
interrupts.restore()
"""


@pytest.mark.parametrize(("way", "outcome"), [
    ("release", "raised"), ("restore", "nothing"), ("hold", "remembered True"),
    ("take", "taken False handled [1]")])
def test_every_way_out_of_the_kernel_hold_unblocks_sigint_for_children(way: str,
                                                                        outcome: str) -> None:
    """release raises the pending Ctrl-C, restore drops it, hold() hands it to the handler,
    take to the caller's own handler; a child started afterwards has SIGINT unblocked."""
    out = subprocess.run([sys.executable, "-c", _HELD, way], capture_output=True, text=True,
                         check=True).stdout.strip().split(maxsplit=2)
    assert out == ["True", "False", outcome]


_HANDOVER = _HELD.split("way = ")[0] + """
import ebpm.cli.app as app
app.run = lambda args: print("child blocks SIGINT:", child_blocks_sigint()) or 0
from ebpm.cli import main
main(["run", "--help"])  # held in the kernel (`run`), then handed over to click
print("after main:", interrupts.blocked() or child_blocks_sigint())
"""


def test_the_hand_over_to_click_unblocks_sigint_first() -> None:
    out = subprocess.run([sys.executable, "-c", _HANDOVER], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == ["child blocks SIGINT: False", "after main: False"]
