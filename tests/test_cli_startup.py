"""ebpm/cli/startup.py: the garbage collector is told to leave alone what lives as long as the
process: after the start-up imports (`freeze()`) and when the command is over (`freeze()` again,
once, where `ebpm.cli.main` returns, on every path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
