"""The trust policy: globs, the deciding rule, defaults, fingerprints, errors with lines, edits."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ebpm.errors import PolicyError
from ebpm.trust import keys
from ebpm.trust import policy as trust


@pytest.mark.parametrize(
    ("pattern", "name", "hit"),
    [
        ("localhost:5000/**", "localhost:5000/tools/x", True),
        ("localhost:5000/*", "localhost:5000/tools/x", False),
        ("localhost:5000/*", "localhost:5000/x", True),
        ("localhost:5000/tools/*", "localhost:5000/tools/x", True),
        ("localhost:5000/tools/*", "localhost:5001/tools/x", False),
        ("ghcr.io/acme/?", "ghcr.io/acme/a", True),
        ("**", "anything/at/all", True),
        ("ghcr.io/acme/x", "ghcr.io/acme/x", True),
        ("ghcr.io/acme/x", "ghcr.io/acme/xy", False),
        ("ghcr.io/a.c/x", "ghcr.io/abc/x", False),  # '.' is literal
    ],
)
def test_glob(pattern: str, name: str, hit: bool) -> None:
    assert trust.glob_match(pattern, name) is hit


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_default_requires_a_signature_and_trusts_nothing() -> None:
    policy = trust.load_policy()
    rule = policy.rule_for("localhost:5000/tools/x")
    assert rule.require and rule.keys == () and rule.path is None
    assert policy.files == ()


def test_most_specific_rule_wins_and_system_wins_ties(system_config: Path) -> None:
    a, b = keys.generate("a"), keys.generate("b")
    user = Path(trust.user_policy_path())
    _write(user, f"""
[[trust]]
scope = "localhost:5000/**"
keys = ["{a.public_path}"]

[[trust]]
scope = "localhost:5000/dev/*"
require = false

[[trust]]
scope = "ghcr.io/acme/*"
keys = ["keys/a.pub"]
""")
    _write(system_config / "policy.toml", f"""
[[trust]]
scope = "ghcr.io/acme/*"
keys = ["{b.public_path}"]
""")
    policy = trust.load_policy()
    assert policy.files == (str(system_config / "policy.toml"), str(user))
    assert policy.rule_for("localhost:5000/tools/x").keys[0].key_id == a.key_id
    dev = policy.rule_for("localhost:5000/dev/x")
    assert not dev.require and dev.line == 6
    acme = policy.rule_for("ghcr.io/acme/x")
    assert acme.system and acme.keys[0].key_id == b.key_id
    assert policy.rule_for("docker.io/library/x").path is None  # default


def test_fingerprint_follows_rules_and_key_contents() -> None:
    info = keys.generate()
    trust.add_trust("localhost:5000/**", info.public_path)
    first = trust.load_policy().fingerprint
    assert trust.load_policy().fingerprint == first  # stable
    # same file path, another key in it: the fingerprint changes
    other = keys.generate("other")
    info.public_path.write_bytes(other.public_path.read_bytes())
    second = trust.load_policy().fingerprint
    assert second != first
    trust.add_trust("ghcr.io/**", None, require=False)
    assert trust.load_policy().fingerprint not in (first, second)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('[[trust]]\nscope = "x/**"\nkeys = [1,,]\nrequire = true\n', 3, "Invalid"),  # syntax
        ('[[trust]]\nscope = "x/**"\nkeys = [\n', 3, "end of document"),
        ('version = 1\n\n[[trust]]\nscope = "x/**"\nrequires = true\n', 5,
         "unknown key 'requires'"),
        ('[[trust]]\nscope = "a/**"\nrequire = false\n\n[[trust]]\nscope = "b"\nrequire = "yes"\n',
         7, "require must be true or false"),
        ('[[trust]]\nscope = "a/**"\nrequire = false\n[[trust]]\nrequire = false\n', 4,
         "needs a scope"),
        ('[[trust]]\nscope = "x/**"\nkeys = ["missing.pub"]\n', 3, "cannot read key"),
        ('[[trust]]\nscope = "x/**"\n', 1, "trusts no key"),
        ('[[trust]]\nscope = "has space"\nrequire = false\n', 2, "invalid scope"),
        ('colour = "blue"\n', 1, "unknown key 'colour'"),
        ('version = 2\n', 1, "unsupported version"),
    ],
)
def test_policy_errors_point_to_file_and_line(text: str, line: int, words: str) -> None:
    path = _write(Path(trust.user_policy_path()), text)
    with pytest.raises(PolicyError) as info:
        trust.load_policy()
    assert f"{path}:{line}" in info.value.message
    assert words in info.value.message
    assert info.value.exit_code == 2


def test_inline_pem_keys() -> None:
    info = keys.generate()
    pem = info.public_path.read_text()
    _write(Path(trust.user_policy_path()), f"[[trust]]\nscope = \"**\"\nkeys = ['''\n{pem}''']\n")
    rule = trust.load_policy().rule_for("x/y")
    assert rule.keys[0].source == "inline" and rule.keys[0].key_id == info.key_id


def test_add_and_remove() -> None:
    a, b = keys.generate("a"), keys.generate("b")
    trust.add_trust("localhost:5000/**", a.public_path)
    trust.add_trust("localhost:5000/**", b.public_path)
    trust.add_trust("localhost:5000/**", b.public_path)  # idempotent
    rule = trust.load_policy().rule_for("localhost:5000/x")
    assert [k.key_id for k in rule.keys] == [a.key_id, b.key_id]
    assert "keys/a.pub" in Path(trust.user_policy_path()).read_text()  # relative to the policy
    assert trust.remove_trust("localhost:5000/**", a.public_path) == 1
    assert [k.key_id for k in trust.load_policy().rules[0].keys] == [b.key_id]
    with pytest.raises(PolicyError, match="needs a key"):
        trust.add_trust("ghcr.io/**", None)
    assert trust.remove_trust("localhost:5000/**") == 1
    assert trust.load_policy().rules == ()
    assert trust.remove_trust("nothing/**") == 0


def test_short_scopes_mean_the_default_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EBPM_REGISTRY", "registry.example:5000")
    info = keys.generate()
    assert trust.add_trust("tools/*", info.public_path).scope == "registry.example:5000/tools/*"
    assert trust.qualify_scope("**") == "**"
    assert trust.qualify_scope("ghcr.io/x") == "ghcr.io/x"
    assert trust.remove_trust("tools/*") == 1


def test_trust_add_refuses_scopes_that_match_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    """'' became 'REGISTRY/' (exit 0, a rule matching nothing; beside another rule, an error
    about a line that does not exist); 'Foo/**' was accepted though repositories are
    lowercase."""
    from tests.cli import ebpm

    keys.generate()
    policy = Path(trust.user_policy_path())
    for scope in ("", "   ", "ghcr.io//x", "Foo/**", "ghcr.io/Acme/*"):
        r = ebpm(capsys, "trust", "add", scope, "--key", "default")
        assert r.code == 2 and f"error: invalid scope {scope!r}" in r.err, r.err
        assert "hint: " in r.err and not policy.exists()
    r = ebpm(capsys, "trust", "add", "Foo/**", "--key", "default")
    assert "repository names are lowercase" in r.err and "/foo/**'" in r.err
    assert ebpm(capsys, "trust", "add", "GHCR.io/acme/*", "--key", "default").code == 0
    before = policy.read_bytes()
    r = ebpm(capsys, "trust", "add", "", "--key", "default")
    assert r.code == 2 and "error: invalid scope ''" in r.err and "line" not in r.err
    assert policy.read_bytes() == before


@given(st.text(alphabet="[] \t\u00a0\u2003trusTxyz:/.*?-_!{}^\\#=", max_size=16))
@example("[[trust]]")
@example(" \t[[ trust\u2003]] # x")
@example("\u00a0[[trust]")
@example("[[trusT]]")
@example("[ [trust]]")
@example("")
@settings(max_examples=500, deadline=None)
def test_policy_checks_are_the_patterns(text: str) -> None:
    """The policy's lines and scopes are checked without patterns compiled at import (each
    cost every command reading the policy ~0.1 ms) exactly as the patterns did."""
    import re

    assert trust._is_header(text) is bool(re.match(r"^\s*\[\[\s*trust\s*\]\]", text))
    assert trust._valid_scope(text) is bool(re.fullmatch(r"[A-Za-z0-9._:/\-*?]+", text))
    found = re.search(r"[\[\]{}!^\\]", text)
    assert next((c for c in text if c in trust._UNSUPPORTED_GLOB), None) == (
        found.group() if found else None)
    rule = trust.Rule(scope=text, keys=(), require=True, path=None, line=0)
    assert trust._specificity(rule, ())[0] == len(re.sub(r"\*\*|\*|\?", "",
                                                         trust.normalize_scope(text, ())))


def _no_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(text: str, path: str) -> dict[str, object]:
        raise AssertionError("parsed the TOML text")

    monkeypatch.setattr(trust, "_toml", refuse)


def test_a_policy_ebpm_wrote_is_read_from_its_saved_document(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ebpm trust add|rm` keeps the TOML document beside the policy (`.policy.toml.json`):
    reading the policy then needs no TOML parser (tomllib, ~3-5 ms of a cold pull)."""
    key = keys.generate("a")
    trust.add_trust("localhost:5000/**", key.public_path)
    path = Path(trust.user_policy_path())
    saved = Path(trust.saved_document_path(str(path)))
    assert saved.name == ".policy.toml.json"
    assert json.loads(saved.read_text())["text"] == path.read_text()
    want = trust.load_policy()
    with monkeypatch.context() as patched:
        _no_toml(patched)
        assert trust.load_policy() == want
        assert want.rule_for("localhost:5000/x").keys[0].key_id == key.key_id
    # edited by hand: the saved document is not this text's, the text is what counts
    path.write_text(path.read_text().replace("localhost:5000/**", "ghcr.io/**"))
    assert trust.load_policy().rules[0].scope == "ghcr.io/**"
    trust.remove_trust("ghcr.io/**")
    assert trust.load_policy().rules == ()
    assert json.loads(saved.read_text())["text"] == path.read_text()


def test_a_saved_document_is_trusted_only_as_the_policy_file_would_be() -> None:
    """What stops a saved document whose document says other than its text (here: signatures
    not required where the text requires them): the policy file's own trust check (owner,
    modes, directories, as ssh checks them). Whoever passes it could write policy.toml too;
    one that others may write, or another user owns, is not read: the text decides."""
    key = keys.generate("a")
    trust.add_trust("localhost:5000/**", key.public_path)
    saved = Path(trust.saved_document_path(trust.user_policy_path()))
    doc = json.loads(saved.read_text())
    doc["document"]["trust"][0]["require"] = False
    saved.write_text(json.dumps(doc))
    assert trust.load_policy().rules[0].require is False  # (written as the policy could be)
    saved.chmod(0o666)
    assert trust.load_policy().rules[0].require is True  # others may write it: not used
    saved.chmod(0o644)
    os.chown(saved, 65534, 65534)  # nobody's
    assert trust.load_policy().rules[0].require is True


@pytest.mark.parametrize("damage", ["garbled", "huge", "unreadable", "other version",
                                    "not a document"])
def test_a_damaged_saved_document_falls_back_to_the_text(damage: str) -> None:
    key = keys.generate("a")
    trust.add_trust("localhost:5000/**", key.public_path)
    path = trust.user_policy_path()
    saved = Path(trust.saved_document_path(path))
    want = trust.load_policy()
    doc = json.loads(saved.read_text())
    doc["document"]["trust"][0]["require"] = False  # what it would say if it were read
    if damage == "garbled":
        saved.write_bytes(saved.read_bytes()[:40] + b"\xff{")
    elif damage == "huge":  # valid JSON, but far beyond what the text's would take
        saved.write_text(" " * (8 * len(Path(path).read_text()) + (64 << 10)) + json.dumps(doc))
    elif damage == "unreadable":
        saved.unlink()
        saved.mkdir()
    elif damage == "other version":
        saved.write_text(json.dumps(dict(doc, v=2)))
    else:
        saved.write_text(json.dumps(dict(doc, document=["trust"])))
    assert trust.load_policy() == want


def test_no_saved_document_when_json_cannot_hold_it(tmp_path: Path) -> None:
    """TOML's dates and NaN have no exact JSON: such a text keeps no saved document (and a
    stale one goes), so it is always parsed."""
    path = tmp_path / "policy.toml"
    saved = Path(trust.saved_document_path(str(path)))
    for text in ("when = 2024-01-01\n", "x = nan\n"):
        saved.write_text("stale")
        trust._save_document(str(path), text)
        assert not saved.exists()
    trust._save_document(str(path), "[[trust]]\nscope = 'a/**'\nrequire = false\n")
    assert json.loads(saved.read_text())["document"] == {
        "trust": [{"scope": "a/**", "require": False}]}
