"""Issue 13, items 10 and 11: trust rules that do not do what they seem are refused (glob
syntax ebpm does not support; equally specific overlapping rules), and files are trusted only
with safe modes, as ssh does (a private key others may read; a policy, trusted key or keys
directory others may write)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ebpm.errors import PolicyError, SignatureError
from ebpm.trust import keys
from ebpm.trust import policy as trust
from tests.cli import ebpm


@pytest.fixture(autouse=True)
def system_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ebpm-system"
    path.mkdir()
    monkeypatch.setenv("EBPM_SYSTEM_CONFIG", str(path))
    monkeypatch.delenv("EBPM_KEY_PASSWORD", raising=False)
    return path


def _policy(text: str) -> Path:
    path = Path(trust.user_policy_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_unsupported_glob_syntax_is_refused() -> None:
    key = keys.generate("a")
    path = _policy(f"""
[[trust]]
scope = "localhost:5000/**"
require = false

[[trust]]
scope = "localhost:5000/[s]mall"
keys = ["{key.public_path}"]
""")
    with pytest.raises(PolicyError) as info:
        trust.load_policy()
    assert info.value.message == (
        f"trust policy {path}:7: scope 'localhost:5000/[s]mall': unsupported glob syntax '[' "
        "(only *, ? and ** are supported; it would match nothing and another rule would decide)")


def test_equally_specific_overlapping_rules_are_refused_with_both_lines() -> None:
    key = keys.generate("a")
    path = _policy(f"""
[[trust]]
scope = "localhost:5000/tools/*x"
keys = ["{key.public_path}"]

[[trust]]
scope = "localhost:5000/tools/a*"
require = false
""")
    with pytest.raises(PolicyError) as info:
        trust.load_policy()
    assert info.value.message == (
        f"trust policy {path}: rules at lines 2 ('localhost:5000/tools/*x') and 6 "
        "('localhost:5000/tools/a*') are equally specific and overlap: which one decides would "
        "depend on their order")


def test_rules_that_cannot_meet_or_differ_in_weight_are_fine() -> None:
    key = keys.generate("a")
    _policy(f"""
[[trust]]
scope = "localhost:5000/tools/*"
keys = ["{key.public_path}"]

[[trust]]
scope = "localhost:5000/other/*"
require = false

[[trust]]
scope = "localhost:5000/**"
keys = ["{key.public_path}"]
""")
    assert trust.load_policy().rule_for("localhost:5000/other/x").require is False


def test_a_private_key_readable_by_others_is_refused() -> None:
    key = keys.generate("a")
    os.chmod(key.private_path, 0o666)
    with pytest.raises(SignatureError, match="mode 0666 lets others read it; refusing to use it"):
        keys.load_private("a")
    os.chmod(key.private_path, 0o600)
    keys.load_private("a")


@pytest.mark.parametrize("what", ["policy", "key", "keys-dir"])
def test_files_others_may_write_are_not_trusted(what: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    key = keys.generate("a")
    path = _policy(f'[[trust]]\nscope = "localhost:5000/**"\nkeys = ["{key.public_path}"]\n')
    target = {"policy": path, "key": key.public_path, "keys-dir": key.public_path.parent}[what]
    os.chmod(target, 0o777 if what == "keys-dir" else 0o666)
    r = ebpm(capsys, "trust", "list")
    assert r.code == 2, r.err
    if what == "keys-dir":
        assert f"its directory {target} (mode 0777) lets others replace it" in r.err
    else:
        kind = "trust policy" if what == "policy" else "trusted key"
        assert f"{kind} {target}: mode 0666 lets others change it; refusing to trust it" in r.err
    assert "chmod" in r.err
