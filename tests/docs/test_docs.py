"""Docs are tests: every shell block of README.md and docs/*.md runs as written.

Each markdown file is one session, its blocks run in order (a later block may use what an
earlier one made): a fresh HOME (the working directory) with ebpm's store, config and data
under it and copies of the parts of a checkout the docs use (`examples/`, `tests/loader/bpf/`,
`tests/corpus/`), and a real registry. The docs say `localhost:5000`; the harness runs each
command with that address (and `127.0.0.1:5000`) rewritten to a registry on a free loopback
port (the one substitution, declared here), so concurrent runs never collide, and rewrites the
port back
(and the temporary HOME as /home/me) in what the command printed before comparing it with the
docs. `sudo` is a shell function (the tests run as root). Each command is bounded in time;
every process it starts is killed with its process group, and a registry started with
`ebpm registry up` is stopped when the file is done.

Blocks that cannot run as written are marked in the markdown with
`<!-- illustrative: REASON -->` on the line before them (see tests/docs/blocks.py).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.docs.blocks import Block, Command, output_matches, shell_blocks
from tests.registryd import Registryd, free_port, start_registry

ROOT = Path(__file__).resolve().parents[2]
DOC_PORT = "5000"  # the port the docs use
DOC_HOME = "/home/me"  # the home directory the docs show
BLOCK_TIMEOUT = 120.0  # seconds per command
COPIED = ("examples", "tests/loader/bpf", "tests/corpus")
TOOLS = [p / "shared" / "tools" / "bin" for p in ROOT.parents]


def doc_files() -> list[Path]:
    """README.md and every page under docs/ (found, not listed: new pages are covered too)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _cases() -> list[pytest.param]:  # type: ignore[valid-type]
    cases = []
    for path in doc_files():
        for block in shell_blocks(path):
            rel = path.relative_to(ROOT)
            # a page's blocks run in order in one session (its files, its registry): `make
            # test` sends a file's tests to one worker (pytest-xdist's --dist loadfile)
            cases.append(pytest.param(block, id=f"{rel}:{block.line}"))
    return cases


@dataclass
class DocSession:
    """One markdown file's environment: HOME, cwd, env, a registry."""

    path: Path
    root: Path
    port: int
    registry: Registryd | None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = Path()
    broken: str = ""  # the first failing block, so later failures say what they depend on

    @classmethod
    def start(cls, path: Path) -> DocSession:
        root = Path(tempfile.mkdtemp(prefix="ebpm-docs-"))
        home = root / "home"
        work = home  # the commands start in HOME, which holds the parts of a checkout they use
        home.mkdir()
        for part in COPIED:  # what "a checkout of ebpm" holds that the docs use
            shutil.copytree(ROOT / part, work / part, ignore=shutil.ignore_patterns(".ebpm"))
        text = path.read_text()
        # A page that starts its own registry (`ebpm registry up`) gets a free port for it;
        # any other page gets one started here.
        registry = None if "ebpm registry up" in text else start_registry(root=root / "registry")
        port = int(registry.host.rsplit(":", 1)[1]) if registry else free_port()
        tools = [str(t) for t in TOOLS if t.is_dir()]
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), *tools,
                                     os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": str(home),
            "EBPM_HOME": str(home / ".cache" / "ebpm"),
            "EBPM_CONFIG": str(home / ".config" / "ebpm"),
            "EBPM_DATA": str(home / ".local" / "share" / "ebpm"),
            "EBPM_SYSTEM_CONFIG": str(root / "etc-ebpm"),
            "EBPM_CORE_CACHE": str(root / "core-cache"),
            "DOCKER_CONFIG": str(home / ".docker"),
            "EBPM_REGISTRY": f"localhost:{port}",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "COLUMNS": "100",
            "SOURCE_DATE_EPOCH": "0",
        }
        return cls(path, root, port, registry, env, work)

    def substitute(self, text: str) -> str:
        return re.sub(rf"\b(localhost|127\.0\.0\.1):{DOC_PORT}\b", rf"\1:{self.port}", text)

    def unsubstitute(self, text: str) -> str:
        text = text.replace(self.env["HOME"], DOC_HOME)
        return re.sub(rf"\b(localhost|127\.0\.0\.1):{self.port}\b", rf"\1:{DOC_PORT}", text)

    def run(self, command: Command) -> tuple[int, str]:
        state = self.root / "state"
        script = "\n".join([
            "sudo() { \"$@\"; }",  # the tests run as root; sudo would reset the environment
            f"[ -f {state}/env ] && . {state}/env",
            f"cd {self.cwd}",
            self.substitute(command.text),
            "rc=$?",
            f"mkdir -p {state}; pwd > {state}/cwd; export -p > {state}/env",
            "exit $rc",
        ])
        proc = subprocess.Popen(["bash", "-c", script], cwd=self.cwd, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            return -1, out.decode(errors="replace") + f"\n[timed out after {BLOCK_TIMEOUT}s]"
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything the block left running
            except ProcessLookupError:
                pass
        cwd_file = state / "cwd"
        if cwd_file.exists():
            self.cwd = Path(cwd_file.read_text().strip())
        return proc.returncode, self.unsubstitute(out.decode(errors="replace"))

    def close(self) -> None:
        subprocess.run([str(Path(sys.executable).parent / "ebpm"), "registry", "down"],
                       env=self.env, capture_output=True, timeout=60)
        if self.registry is not None:
            self.registry.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Sessions:
    """The session of the file being run; the previous file's is closed when the next starts."""

    def __init__(self) -> None:
        self.current: DocSession | None = None

    def get(self, path: Path) -> DocSession:
        if self.current is None or self.current.path != path:
            self.close()
            self.current = DocSession.start(path)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


@pytest.fixture(scope="module")
def sessions() -> Iterator[Sessions]:
    s = Sessions()
    yield s
    s.close()


def _cut(out: str, head: int = 40, tail: int = 10) -> str:
    lines = out.splitlines()
    if len(lines) <= head + tail:
        return out
    return "\n".join([*lines[:head], f"[... {len(lines) - head - tail} lines ...]",
                      *lines[-tail:]])


def _expects_failure(command: Command) -> bool:
    return any(line.startswith(("error:", "Error:")) for line in command.expected or ())


@pytest.mark.kernel
@pytest.mark.registry
@pytest.mark.parametrize("block", _cases())
def test_doc_block(block: Block, sessions: Sessions) -> None:
    if block.marker == "illustrative":
        assert block.reason, f"{block.where}: an illustrative block needs a reason"
        return
    if os.geteuid() != 0:
        pytest.skip("feature probe: the docs' commands run eBPF programs and need root")
    session = sessions.get(block.path)
    for command in block.commands:
        code, out = session.run(command)
        where = f"{block.path.relative_to(ROOT)}:{command.line}"
        context = f" (after an earlier failure at {session.broken})" if session.broken else ""
        shown = f"$ {command.text}\n{_cut(out)}"
        problem = ""
        if code == -1:
            problem = "timed out"
        elif _expects_failure(command) and code == 0:
            problem = "the docs show an error, but it exited 0"
        elif not _expects_failure(command) and code != 0:
            problem = f"exit status {code}"
        elif command.expected is not None and block.marker != "output-varies":
            if not output_matches(command.expected, out.rstrip("\n").splitlines()):
                problem = "the output differs from the docs\n--- docs\n" + "\n".join(
                    command.expected) + "\n--- got"
        if problem:
            session.broken = session.broken or where
            pytest.fail(f"{where}: {problem}{context}\n{shown}", pytrace=False)
