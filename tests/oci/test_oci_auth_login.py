"""`ebpm login` / `ebpm logout` as a user runs them: verified before storing, mode 0600, the
password never printed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from ebpm.oci.auth import auth_file, lookup
from tests.oci.conftest import PASSWORD, USER
from tests.registryd import Registryd

EBPM = str(Path(sys.executable).parent / "ebpm")


def _ebpm(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([EBPM, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ))


def test_login_stores_0600_and_logout_forgets(htpasswd_registry: Registryd) -> None:
    host = htpasswd_registry.host
    out = _ebpm("login", host, "-u", USER, "--password-stdin", stdin=PASSWORD + "\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"Login succeeded: credentials for {host} saved in {auth_file()}\n"
    assert PASSWORD not in out.stdout + out.stderr
    assert stat.S_IMODE(auth_file().stat().st_mode) == 0o600
    assert lookup(host).password == PASSWORD  # type: ignore[union-attr]
    out = _ebpm("logout", host)
    assert (out.returncode, out.stdout) == (0, f"Removed credentials for {host}\n")
    assert lookup(host) is None
    assert _ebpm("logout", host).stdout == f"Not logged in to {host}\n"


def test_login_with_wrong_password_stores_nothing(htpasswd_registry: Registryd) -> None:
    host = htpasswd_registry.host
    out = _ebpm("login", host, "-u", USER, "-p", "wrong-password")
    assert out.returncode == 1
    warning, error = out.stderr.splitlines()[:2]
    assert warning.startswith("warning: --password on the command line is visible")
    assert error.startswith(f"error: registry {host}: wrong credentials (user 'alice'")
    assert "hint: check the user name and password (or token); nothing was stored" in out.stderr
    assert "log in again" not in out.stderr  # that is what just failed
    assert "wrong-password" not in out.stdout + out.stderr
    assert not auth_file().exists()


def test_login_through_a_token_server(token_registry) -> None:
    out = _ebpm("login", token_registry.host, "-u", USER, "--password-stdin", stdin=PASSWORD)
    assert out.returncode == 0, out.stderr
    out = _ebpm("login", token_registry.host, "-u", USER, "--password-stdin", stdin="nope")
    assert out.returncode == 1 and "wrong credentials" in out.stderr


def test_login_without_a_terminal_needs_user_and_password(htpasswd_registry: Registryd) -> None:
    out = _ebpm("login", htpasswd_registry.host)
    assert out.returncode == 2
    assert out.stderr == "error: login: no username\nhint: pass -u USER\n"


def test_a_damaged_credentials_file_is_named_in_words(htpasswd_registry: Registryd) -> None:
    """Not `JSONDecodeError`: where the file stops being JSON, and never its content."""
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    for content, why in ((b'{"auths": {"h": {"auth": "c2VjcmV0"}}\n', "not valid JSON at line 2 "
                          "column 1"), (b"\xff\xfe", "not UTF-8 text")):
        path.write_bytes(content)
        path.chmod(0o600)
        out = _ebpm("login", htpasswd_registry.host, "-u", USER, "--password-stdin",
                    stdin=PASSWORD)
        assert out.returncode == 1
        assert out.stderr.splitlines() == [f"error: credentials file {path}: {why}",
                                           f"hint: fix or remove {path}"]
        assert path.read_bytes() == content  # nothing half-written
