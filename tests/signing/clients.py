"""The real OCI and signing clients (cosign, skopeo-sigstore, crane, oras, regctl) as oracles.

They are found in `shared/tools/bin` beside the project (or beside any folder above it) or on
PATH; a test that needs one is skipped, naming the binary, when neither has it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]


def find_tool(name: str) -> str | None:
    for folder in _ROOT.parents:
        candidate = folder / "shared" / "tools" / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def tool(name: str) -> str:
    """The path of client `name`, or skip the test (a feature probe that names the binary)."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} not found in shared/tools/bin or on PATH")
    return path


def run(name: str, *args: str, env: dict[str, str] | None = None, check: bool = True,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run client `name`; on failure the assertion shows its output."""
    proc = subprocess.run([tool(name), *args], capture_output=True, text=True, env=env,
                          input=input, timeout=120)
    if check:
        assert proc.returncode == 0, f"{name} {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def client_env(tmp: Path) -> dict[str, str]:
    """An environment for the Go clients: HOME and TUF_ROOT in a temporary directory (cosign
    writes there), no docker credentials, no proxies."""
    home = tmp / "client-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.lower().endswith("_proxy") and k not in ("DOCKER_CONFIG",)}
    env.update(HOME=str(home), TUF_ROOT=str(tmp / "tuf"), DOCKER_CONFIG=str(home / ".docker"),
               COSIGN_PASSWORD="cosign-test", XDG_CONFIG_HOME=str(home / ".config"))
    return env


def cosign_keys(tmp: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A cosign key pair (cosign.key encrypted with COSIGN_PASSWORD, cosign.pub)."""
    folder = tmp / "cosign-keys"
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([tool("cosign"), "generate-key-pair"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return folder / "cosign.key", folder / "cosign.pub"
