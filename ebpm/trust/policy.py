"""The trust policy: which public keys may sign which repositories, and where signing is required.

Two TOML files make up the policy, the system's ($EBPM_SYSTEM_CONFIG/policy.toml, default
/etc/ebpm/policy.toml) and the user's ($EBPM_CONFIG/policy.toml, default
~/.config/ebpm/policy.toml)::

    [[trust]]
    scope = "localhost:5000/tools/**"   # a glob over registry/repository
    keys = ["keys/default.pub"]         # public key files (relative to this file) or inline PEM
    require = true                      # default true; false accepts unsigned packages

`*` and `?` stay inside one path segment, `**` crosses `/`. For a repository the most specific
matching rule decides (most literal characters; the system file wins a tie). Where no rule
matches, a signature is required and no key is trusted: nothing unsigned runs by default.
Errors name the file and line. The policy's fingerprint (rules and key ids) goes into every
verification record so that a changed policy makes cached packages verify again.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebpm.canonical import canonical_json
from ebpm.errors import PolicyError, SignatureError

__all__ = [
    "TrustedKey",
    "Rule",
    "Policy",
    "POLICY_FILE",
    "user_policy_path",
    "system_policy_path",
    "load_policy",
    "parse_policy",
    "glob_match",
    "add_trust",
    "remove_trust",
    "qualify_scope",
]

POLICY_FILE = "policy.toml"
_RULE_KEYS = {"scope", "keys", "require"}
_TOP_KEYS = {"version", "trust"}
_HEADER_RE = re.compile(r"^\s*\[\[\s*trust\s*\]\]")
_SCOPE_RE = re.compile(r"^[A-Za-z0-9._:/\-*?\[\]]+$")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the policy trusts: where it came from, its id and its PEM."""

    source: str  # the path, or "inline"
    key_id: str
    pem: bytes = field(repr=False)


@dataclass(frozen=True)
class Rule:
    """One `[[trust]]` table: a scope glob, its keys, whether a signature is required."""

    scope: str
    keys: tuple[TrustedKey, ...]
    require: bool
    path: Path | None  # the policy file (None for the built-in default)
    line: int
    system: bool = False

    def matches(self, name: str) -> bool:
        return glob_match(self.scope, name)

    @property
    def specificity(self) -> tuple[int, int]:
        literal = len(re.sub(r"\*\*|\*|\?|\[[^\]]*\]", "", self.scope))
        return literal, 1 if self.system else 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else "built-in default"


DEFAULT_RULE = Rule(scope="**", keys=(), require=True, path=None, line=0)


@dataclass(frozen=True)
class Policy:
    """The effective policy: the rules of the system and user files."""

    rules: tuple[Rule, ...]
    files: tuple[Path, ...]  # the files that exist and were read

    def rule_for(self, name: str) -> Rule:
        """The rule deciding for `name` (registry/repository); the default when none matches."""
        matching = [r for r in self.rules if r.matches(name)]
        if not matching:
            return DEFAULT_RULE
        return max(matching, key=lambda r: r.specificity)

    @property
    def fingerprint(self) -> str:
        """sha256 over the rules and the ids of their keys: changes whenever trust changes."""
        doc = [
            {
                "scope": r.scope,
                "require": r.require,
                "keys": [k.key_id for k in r.keys],
                "system": r.system,
            }
            for r in self.rules
        ]
        return "sha256:" + hashlib.sha256(canonical_json({"v": 1, "rules": doc})).hexdigest()


def user_policy_path() -> Path:
    from ebpm import config

    return config.config_dir() / POLICY_FILE


def system_policy_path() -> Path:
    from ebpm import config

    return config.system_config_dir() / POLICY_FILE


def glob_match(pattern: str, name: str) -> bool:
    """Match registry/repository `name` against `pattern` (`*`, `?` in a segment, `**` across)."""
    return _compile(pattern).fullmatch(name) is not None


def _compile(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _lines(text: str) -> tuple[list[int], list[str]]:
    lines = text.splitlines()
    headers = [n + 1 for n, line in enumerate(lines) if _HEADER_RE.match(line)]
    return headers, lines


def _line_of(text: str, index: int | None, key: str | None) -> int:
    """Best effort: the line of table `index` (or its `key`), or of a top-level `key`."""
    headers, lines = _lines(text)
    start, end = 0, len(lines)
    if index is not None:
        if index >= len(headers):
            return 1
        start = headers[index] - 1
        end = headers[index + 1] - 1 if index + 1 < len(headers) else len(lines)
        if key is None:
            return headers[index]
    if key is not None:
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for n in range(start, end):
            if pattern.match(lines[n]):
                return n + 1
    return start + 1 if index is not None else 1


def _load_key(value: Any, base: Path, where: str) -> TrustedKey:
    from ebpm.trust.keys import key_id, public_der

    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{where}: a key is a public key file path or inline PEM")
    if "BEGIN PUBLIC KEY" in value:
        pem, source = value.encode(), "inline"
    else:
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = base / path
        try:
            pem = path.read_bytes()
        except OSError as err:
            raise PolicyError(
                f"{where}: cannot read key {path}: {err.strerror}",
                hint="fix the path, or remove the key with `ebpm trust rm`",
            ) from err
        source = str(path)
    try:
        return TrustedKey(source, key_id(public_der(pem, where=source)), pem)
    except SignatureError as err:
        raise PolicyError(f"{where}: {err.message}", hint=err.hint) from err


def parse_policy(text: str, path: Path, *, system: bool = False) -> tuple[Rule, ...]:
    """Parse one policy file's text; PolicyError names `path` and the line at fault."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        found = re.search(r"at line (\d+)", str(err))
        line = int(found.group(1)) if found else max(1, len(text.splitlines()))
        loc = f"{path}:{line}"
        raise PolicyError(
            f"trust policy {loc}: {err}",
            hint="fix the TOML syntax; nothing runs until the policy parses",
        ) from err

    def fail(message: str, index: int | None = None, key: str | None = None) -> PolicyError:
        return PolicyError(
            f"trust policy {path}:{_line_of(text, index, key)}: {message}",
            hint="fix the policy file; nothing runs until it is valid",
        )

    for key in doc:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r} (expected [[trust]] tables)", None, key)
    if doc.get("version", 1) != 1:
        raise fail(f"unsupported version {doc.get('version')!r}", None, "version")
    tables = doc.get("trust", [])
    if not isinstance(tables, list):
        raise fail("'trust' must be an array of tables, written [[trust]]", None, "trust")
    rules = []
    for i, table in enumerate(tables):
        if not isinstance(table, dict):
            raise fail("each [[trust]] entry must be a table", i)
        for key in table:
            if key not in _RULE_KEYS:
                raise fail(f"unknown key {key!r} in [[trust]] (scope, keys, require)", i, key)
        scope = table.get("scope")
        if not isinstance(scope, str) or not scope:
            raise fail("[[trust]] needs a scope string, e.g. \"localhost:5000/**\"", i, "scope")
        if not _SCOPE_RE.match(scope):
            raise fail(f"invalid scope {scope!r}", i, "scope")
        require = table.get("require", True)
        if not isinstance(require, bool):
            raise fail("require must be true or false", i, "require")
        raw_keys = table.get("keys", [])
        if not isinstance(raw_keys, list):
            raise fail("keys must be a list of key files or PEM strings", i, "keys")
        where = f"trust policy {path}:{_line_of(text, i, 'keys')}"
        keys = tuple(_load_key(v, path.parent, where) for v in raw_keys)
        if require and not keys:
            raise fail(f"scope {scope!r} requires a signature but trusts no key", i, "keys")
        rules.append(Rule(scope, keys, require, path, _line_of(text, i, None), system=system))
    return tuple(rules)


def _read(path: Path, *, system: bool) -> tuple[Rule, ...] | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise PolicyError(f"trust policy {path}: cannot read: {err.strerror}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyError(f"trust policy {path}: not UTF-8 text") from err
    return parse_policy(text, path, system=system)


def load_policy() -> Policy:
    """The effective policy from the system and user files (either may be absent)."""
    rules: list[Rule] = []
    files: list[Path] = []
    for path, system in ((system_policy_path(), True), (user_policy_path(), False)):
        parsed = _read(path, system=system)
        if parsed is not None:
            rules.extend(parsed)
            files.append(path)
    return Policy(tuple(rules), tuple(files))


# -- editing the user's policy ----------------------------------------------------------------

_HEADER = (
    "# ebpm trust policy (edit with `ebpm trust add|rm`; see docs/signing.md).\n"
    "# scope: a glob over registry/repository; keys: public key files or inline PEM;\n"
    "# require: false accepts unsigned packages in the scope.\n\n"
)


def _raw_tables(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    _read(path, system=False)  # refuse to edit a broken file (the error points to the line)
    doc = tomllib.loads(path.read_text())
    return [dict(t) for t in doc.get("trust", [])]


def _write_tables(path: Path, tables: list[dict[str, Any]]) -> None:
    import tomli_w

    from ebpm.trust.keys import _write

    body = tomli_w.dumps({"trust": tables}) if tables else ""
    _write(path, (_HEADER + body).encode(), 0o644)


def _key_value(key_path: Path, policy_path: Path) -> str:
    key_path = key_path.resolve()
    try:
        return str(key_path.relative_to(policy_path.parent.resolve()))
    except ValueError:
        return str(key_path)


def qualify_scope(scope: str) -> str:
    """A scope without a registry part (`tools/*`) means the default registry's repositories,
    as a short reference does; scopes that start with a wildcard stay as they are."""
    first = scope.split("/", 1)[0]
    if first.startswith("*") or "." in first or ":" in first or first == "localhost":
        return scope
    from ebpm import config

    return f"{config.default_registry()}/{scope}"


def add_trust(scope: str, key_path: Path | None, *, require: bool = True,
              path: Path | None = None) -> Rule:
    """Trust `key_path` for `scope` in the user's policy (adding to a rule of the same scope).
    A scope without a registry part is qualified with the default registry."""
    path = path or user_policy_path()
    scope = qualify_scope(scope)
    if not _SCOPE_RE.match(scope):
        raise PolicyError(f"invalid scope {scope!r}",
                          hint="a glob over registry/repository, e.g. localhost:5000/tools/**")
    tables = _raw_tables(path)
    table = next((t for t in tables if t.get("scope") == scope), None)
    if table is None:
        table = {"scope": scope, "keys": []}
        tables.append(table)
    keys = list(table.get("keys", []))
    if key_path is not None:
        value = _key_value(key_path, path)
        if value not in keys:
            keys.append(value)
    table["keys"] = keys
    table["require"] = require
    if require and not keys:
        raise PolicyError(f"scope {scope!r}: requiring a signature needs a key",
                          hint="pass --key NAME, or --optional to accept unsigned packages")
    _write_tables(path, tables)
    rules = parse_policy(path.read_text(), path)
    return next(r for r in rules if r.scope == scope)


def remove_trust(scope: str, key_path: Path | None = None, *, path: Path | None = None) -> int:
    """Remove the rule for `scope` (or only `key_path` from it); returns what was removed."""
    path = path or user_policy_path()
    tables = _raw_tables(path)
    scopes = {t.get("scope") for t in tables}
    if scope not in scopes:
        scope = qualify_scope(scope)
    removed = 0
    kept = []
    for table in tables:
        if table.get("scope") != scope:
            kept.append(table)
            continue
        if key_path is None:
            removed += 1
            continue
        value = _key_value(key_path, path)
        keys = [k for k in table.get("keys", []) if k not in (value, str(key_path))]
        removed += len(table.get("keys", [])) - len(keys)
        table["keys"] = keys
        if keys or not table.get("require", True):
            kept.append(table)
    if removed:
        _write_tables(path, kept)
    return removed
