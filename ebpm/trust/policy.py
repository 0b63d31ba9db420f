"""The trust policy: which public keys may sign which repositories, and where signing is required.

Two TOML files make up the policy, the system's ($EBPM_SYSTEM_CONFIG/policy.toml, default
/etc/ebpm/policy.toml) and the user's ($EBPM_CONFIG/policy.toml, default
~/.config/ebpm/policy.toml)::

    [[trust]]
    scope = "localhost:5000/tools/**"   # a glob over registry/repository
    keys = ["keys/default.pub"]         # public key files (relative to this file) or inline PEM
    require = true                      # default true; false accepts unsigned packages
    signed_identity = "match-repository" # default; "match-digest" accepts any repository
    remap = { prefix = "localhost:5000/mirror", signed_prefix = "ghcr.io/org" }  # optional
    keyless = [{ identity = "...", issuer = "..." }]  # Sigstore certificate identities

    [[alias]]                           # spellings of one registry (loopback names built in)
    names = ["registry.internal:5000", "10.0.0.5:5000"]

`*` and `?` stay inside one path segment, `**` crosses `/`; other glob syntax (`[...]`, `{...}`)
is refused rather than matched literally. A scope's registry is compared as signature identities
are (ebpm.trust.identity): the loopback spellings of one port, Docker Hub's names and the
[[alias]] groups are one registry, so `localhost:5000/**` covers `127.0.0.1:5000/x`. For a
repository the most specific matching rule decides (most literal characters; the system file
wins a tie); two equally specific rules of one file that can match the same repository are
refused, naming both lines. The policy file and path keys are trusted only if others cannot
write them (modes checked as ssh does). Where no rule matches, a signature is required and no
key is trusted: nothing unsigned runs by default.
Errors name the file and line. The policy's fingerprint (rules and key ids) goes into every
verification record so that a changed policy makes cached packages verify again.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
from typing import TYPE_CHECKING, Any

from ebpm.canonical import canonical_json
from ebpm.errors import PolicyError, SignatureError
from ebpm.files import read_bytes
from ebpm.record import field, record
from ebpm.trust.identity import (
    SIGNED_IDENTITIES,
    IdentityRule,
    Remap,
    normalize,
    normalize_scope,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "TrustedKey",
    "KeylessIdentity",
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
    "trust_key",
    "untrust_key",
    "qualify_scope",
]

POLICY_FILE = "policy.toml"
_RULE_KEYS = {"scope", "keys", "require", "signed_identity", "remap", "keyless", "trusted_root",
              "legacy_keyless"}
_TOP_KEYS = {"version", "trust", "alias"}
_KEYLESS_KEYS = {"identity", "identity_regexp", "issuer", "issuer_regexp"}
TRUSTED_ROOT = "sigstore/trusted_root.json"  # default, relative to the config dir
# a scope's characters; the glob syntax refused rather than matched literally (plain sets: a
# pattern compiled at import cost every command that reads the policy ~0.1 ms each)
_SCOPE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-*?")
_UNSUPPORTED_GLOB = "[]{}!^\\"


@record
class TrustedKey:
    """A public key the policy trusts: where it came from, its id and its PEM."""

    source: str  # the path, or "inline"
    key_id: str
    pem: bytes = field(repr=False)


@record
class KeylessIdentity:
    """A Sigstore certificate identity a rule trusts, as cosign's `--certificate-identity[-regexp]`
    and `--certificate-oidc-issuer[-regexp]`: exactly one of each pair is set."""

    identity: str = ""
    identity_regexp: str = ""
    issuer: str = ""
    issuer_regexp: str = ""

    def matches(self, identities: list[str], issuer: str) -> bool:
        if self.issuer and issuer != self.issuer:
            return False
        if self.issuer_regexp and not re.fullmatch(self.issuer_regexp, issuer):
            return False
        if self.identity:
            return self.identity in identities
        return any(re.fullmatch(self.identity_regexp, i) for i in identities)

    def __str__(self) -> str:
        who = self.identity or f"~{self.identity_regexp}"
        by = self.issuer or f"~{self.issuer_regexp}"
        return f"{who} (issuer {by})"


@record
class Rule:
    """One `[[trust]]` table: a scope glob, its keys, whether a signature is required."""

    scope: str
    keys: tuple[TrustedKey, ...]
    require: bool
    path: str | None  # the policy file (None for the built-in default)
    line: int
    system: bool = False
    signed_identity: str = "match-repository"
    remap: Remap | None = None
    keyless: tuple[KeylessIdentity, ...] = ()
    trusted_root: str | None = None  # Sigstore trusted_root.json, for keyless rules
    trusted_root_digest: str = ""  # sha256 of its bytes, read when the policy loads
    legacy_keyless: bool = False  # accept cosign's legacy keyless form (no inclusion proof)

    def matches(self, name: str) -> bool:
        return glob_match(self.scope, name)

    @property
    def specificity(self) -> tuple[int, int]:
        return _specificity(self, ())

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.path else "built-in default"


def _specificity(rule: Rule, aliases: tuple[tuple[str, ...], ...]) -> tuple[int, int]:
    """Literal characters of the scope with its registry spelled canonically (so that
    `127.0.0.1:5000/**` and `localhost:5000/**` are equally specific), then system over user."""
    scope = normalize_scope(rule.scope, aliases)
    literal = len(scope) - scope.count("*") - scope.count("?")
    return literal, 1 if rule.system else 0


DEFAULT_RULE = Rule(scope="**", keys=(), require=True, path=None, line=0)


@record
class Policy:
    """The effective policy: the rules of the system and user files."""

    rules: tuple[Rule, ...]
    files: tuple[str, ...]  # the files that exist and were read
    aliases: tuple[tuple[str, ...], ...] = ()  # [[alias]] groups: spellings of one registry

    def identity_rule(self, rule: Rule) -> IdentityRule:
        """How `rule` matches the identities signatures claim (with the policy's aliases)."""
        return IdentityRule(rule.signed_identity, rule.remap, self.aliases)

    def covers(self, rule: Rule, name: str) -> bool:
        """Does `rule`'s scope cover `name` (registry/repository), as written or with both
        registries spelled canonically (loopback names, Docker Hub, the policy's aliases)?"""
        return rule.matches(name) or glob_match(normalize_scope(rule.scope, self.aliases),
                                                normalize(name, self.aliases))

    def rule_for(self, name: str) -> Rule:
        """The rule deciding for `name` (registry/repository); the default when none matches.
        Spellings of one registry are one (`127.0.0.1:5000` and `[::1]:5000` are
        `localhost:5000`; [[alias]] groups): a rule for one spelling decides for all."""
        found = self._decided.get(name)
        if found is None:
            matching = [r for r in self.rules if self.covers(r, name)]
            found = max(matching, key=lambda r: _specificity(r, self.aliases)) if matching \
                else DEFAULT_RULE
            self._decided[name] = found
        return found

    @functools.cached_property
    def _decided(self) -> dict[str, Rule]:
        """name -> its rule, as decided once (an install asks twice per package)."""
        return {}

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 over the rules and the ids of their keys: changes whenever trust changes
        (computed once per policy: an install asks for it twice per package)."""
        doc = [
            {
                "scope": r.scope,
                "require": r.require,
                "keys": [k.key_id for k in r.keys],
                "system": r.system,
                "signed_identity": r.signed_identity,
                "remap": [r.remap.prefix, r.remap.signed_prefix] if r.remap else None,
                "keyless": [str(k) for k in r.keyless],
                "trusted_root": r.trusted_root_digest,
                "legacy_keyless": r.legacy_keyless,
            }
            for r in self.rules
        ]
        aliases = [list(a) for a in self.aliases]
        from ebpm.digests import sha256_digest

        return sha256_digest(canonical_json({"v": 2, "rules": doc, "aliases": aliases}))


def user_policy_path() -> str:
    from ebpm import config

    return os.path.join(config.config_dir(), POLICY_FILE)


def system_policy_path() -> str:
    from ebpm import config

    return os.path.join(config.system_config_dir(), POLICY_FILE)


def glob_match(pattern: str, name: str) -> bool:
    """Match registry/repository `name` against `pattern` (`*`, `?` in a segment, `**` across)."""
    return _compile(pattern).fullmatch(name) is not None


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    """The regular expression of a scope glob (kept: an install matches the same few scopes
    twice per package)."""
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
    headers = [n + 1 for n, line in enumerate(lines) if _is_header(line)]
    return headers, lines


def _valid_scope(scope: str) -> bool:
    return bool(scope) and _SCOPE_CHARS.issuperset(scope)


def _is_header(line: str) -> bool:
    """Does `line` open a `[[trust]]` table (`[[`, `trust`, `]]`, whitespace around each)?"""
    rest = line.lstrip()
    if not rest.startswith("[["):
        return False
    rest = rest[2:].lstrip()
    return rest.startswith("trust") and rest[5:].lstrip().startswith("]]")


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


def _load_key(value: Any, base: str, place: Callable[[], str]) -> TrustedKey:
    """One trusted key of a rule; `place()` names where it is written (for errors only: finding
    the line compiles a pattern, which a valid policy need not pay on every command)."""
    from ebpm.trust.keys import key_id, public_der

    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{place()}: a key is a public key file path or inline PEM")
    if "BEGIN PUBLIC KEY" in value:
        pem, source = value.encode(), "inline"
    else:
        path = os.path.join(base, os.path.expanduser(value))  # (as is when absolute)
        try:
            pem = read_bytes(path)
        except OSError as err:
            raise PolicyError(
                f"{place()}: cannot read key {path}: {err.strerror}",
                hint="fix the path, or remove the key with `ebpm trust rm`",
            ) from err
        source = path
        from ebpm.trust.modes import check_trusted_file

        check_trusted_file(path, "trusted key")
    try:
        return TrustedKey(source, key_id(public_der(pem, where=source)), pem)
    except SignatureError as err:
        raise PolicyError(f"{place()}: {err.message}", hint=err.hint) from err


def parse_policy(text: str, path: str | os.PathLike[str], *, system: bool = False
                 ) -> tuple[Rule, ...]:
    """Parse one policy file's text; PolicyError names `path` and the line at fault."""
    return _parse(text, os.fspath(path), system=system)[0]


def _toml(text: str, path: str) -> dict[str, Any]:
    """The TOML document of a policy file's text; PolicyError names the line at fault."""
    import tomllib

    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as err:
        found = re.search(r"at line (\d+)", str(err))
        line = int(found.group(1)) if found else max(1, len(text.splitlines()))
        loc = f"{path}:{line}"
        raise PolicyError(
            f"trust policy {loc}: {err}",
            hint="fix the TOML syntax; nothing runs until the policy parses",
        ) from err


def _parse(text: str, path: str, *, system: bool = False, doc: dict[str, Any] | None = None
           ) -> tuple[tuple[Rule, ...], tuple[tuple[str, ...], ...]]:
    """A policy file's rules and [[alias]] groups (`doc`: its TOML document, when known)."""
    if doc is None:
        doc = _toml(text, path)

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
                raise fail(f"unknown key {key!r} in [[trust]] ({', '.join(sorted(_RULE_KEYS))})",
                           i, key)
        scope = table.get("scope")
        if not isinstance(scope, str) or not scope:
            raise fail("[[trust]] needs a scope string, e.g. \"localhost:5000/**\"", i, "scope")
        unsupported = next((c for c in scope if c in _UNSUPPORTED_GLOB), None)
        if unsupported:
            raise fail(f"scope {scope!r}: unsupported glob syntax {unsupported!r} (only "
                       "*, ? and ** are supported; it would match nothing and another rule "
                       "would decide)", i, "scope")
        if not _valid_scope(scope):
            raise fail(f"invalid scope {scope!r}", i, "scope")
        require = table.get("require", True)
        if not isinstance(require, bool):
            raise fail("require must be true or false", i, "require")
        raw_keys = table.get("keys", [])
        if not isinstance(raw_keys, list):
            raise fail("keys must be a list of key files or PEM strings", i, "keys")
        def place(i: int = i) -> str:
            return f"trust policy {path}:{_line_of(text, i, 'keys')}"

        keys = tuple(_load_key(v, os.path.dirname(path), place) for v in raw_keys)
        extra = _identity_fields(table, path, lambda m, k, i=i: fail(m, i, k))
        if require and not keys and not extra.get("keyless"):
            raise fail(f"scope {scope!r} requires a signature but trusts no key", i, "keys")
        rules.append(Rule(scope, keys, require, path, _line_of(text, i, None), system=system,
                          **extra))
    aliases = parse_aliases(doc, fail)
    _refuse_ties(rules, aliases)
    return tuple(rules), aliases


def _refuse_ties(rules: list[Rule], aliases: tuple[tuple[str, ...], ...]) -> None:
    """Two rules of one file that are equally specific and can match the same repository would
    be decided by their order in the file: refused, naming both lines (scopes compared with
    their registries spelled canonically: `localhost:5000/**` and `127.0.0.1:5000/**` tie)."""
    for n, first in enumerate(rules):
        for second in rules[n + 1:]:
            if _specificity(first, aliases) == _specificity(second, aliases) and (
                    globs_overlap(first.scope, second.scope) or globs_overlap(
                        normalize_scope(first.scope, aliases),
                        normalize_scope(second.scope, aliases))):
                raise PolicyError(
                    f"trust policy {first.path}: rules at lines {first.line} ({first.scope!r}) "
                    f"and {second.line} ({second.scope!r}) are equally specific and overlap: "
                    "which one decides would depend on their order",
                    hint="make one scope more specific (more literal characters), or merge them",
                )


def _glob_tokens(pattern: str) -> list[str]:
    tokens, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            tokens.append("**")
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return tokens


def globs_overlap(a: str, b: str) -> bool:
    """True when some registry/repository name matches both scope globs (a walk over the
    product of their automata: `*`/`?` stay in a segment, `**` crosses `/`)."""
    ta, tb = _glob_tokens(a), _glob_tokens(b)
    stars = ("*", "**")

    def meet(x: str, y: str) -> bool:  # can one character satisfy both tokens?
        if x == "**" or y == "**":
            return True
        wild = ("*", "?")
        if x in wild and y in wild:
            return True
        if x in wild:
            return y != "/"
        if y in wild:
            return x != "/"
        return x == y

    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(ta) and j == len(tb):
            return True
        if i < len(ta) and ta[i] in stars:
            stack.append((i + 1, j))  # the star matches nothing more
        if j < len(tb) and tb[j] in stars:
            stack.append((i, j + 1))
        if i < len(ta) and j < len(tb) and meet(ta[i], tb[j]):
            stack.append((i if ta[i] in stars else i + 1, j if tb[j] in stars else j + 1))
    return False


def _identity_fields(table: dict[str, Any], path: str,
                     fail: Any) -> dict[str, Any]:
    """The optional identity keys of a [[trust]] table: signed_identity, remap, keyless,
    trusted_root."""
    extra: dict[str, Any] = {}
    signed = table.get("signed_identity", SIGNED_IDENTITIES[0])
    if signed not in SIGNED_IDENTITIES:
        raise fail(f"signed_identity must be one of {', '.join(SIGNED_IDENTITIES)}",
                   "signed_identity")
    extra["signed_identity"] = signed
    remap = table.get("remap")
    if remap is not None:
        if (not isinstance(remap, dict) or set(remap) != {"prefix", "signed_prefix"}
                or not all(isinstance(v, str) and v for v in remap.values())):
            raise fail('remap is { prefix = "REGISTRY/REPO", signed_prefix = "REGISTRY/REPO" }',
                       "remap")
        extra["remap"] = Remap(remap["prefix"].rstrip("/"), remap["signed_prefix"].rstrip("/"))
    keyless = table.get("keyless", [])
    if not isinstance(keyless, list):
        raise fail("keyless must be a list of { identity, issuer } tables", "keyless")
    identities = []
    for entry in keyless:
        if not isinstance(entry, dict) or set(entry) - _KEYLESS_KEYS or not all(
                isinstance(v, str) and v for v in entry.values()):
            raise fail("a keyless entry takes identity or identity_regexp, and issuer or "
                       "issuer_regexp (strings)", "keyless")
        if ("identity" in entry) == ("identity_regexp" in entry) or (
                "issuer" in entry) == ("issuer_regexp" in entry):
            raise fail("a keyless entry needs exactly one of identity/identity_regexp and one "
                       "of issuer/issuer_regexp", "keyless")
        for key in ("identity_regexp", "issuer_regexp"):
            if key in entry:
                try:
                    re.compile(entry[key])
                except re.error as err:
                    raise fail(f"keyless {key} {entry[key]!r}: {err}", "keyless") from err
        identities.append(KeylessIdentity(**entry))
    if identities:
        extra["keyless"] = tuple(identities)
        root_value = table.get("trusted_root")
        if root_value is not None and (not isinstance(root_value, str) or not root_value):
            raise fail("trusted_root is the path of a Sigstore trusted_root.json",
                       "trusted_root")
        if root_value:
            root = os.path.join(os.path.dirname(path), os.path.expanduser(root_value))
        else:
            from ebpm import config

            root = os.path.join(config.config_dir(), TRUSTED_ROOT)
        try:
            from ebpm.digests import sha256_digest

            extra["trusted_root_digest"] = sha256_digest(read_bytes(root))
        except OSError as err:
            raise fail(f"keyless rules need a Sigstore trusted root: cannot read {root}: "
                       f"{err.strerror}", "trusted_root") from err
        extra["trusted_root"] = root
        legacy = table.get("legacy_keyless", False)
        if not isinstance(legacy, bool):
            raise fail("legacy_keyless must be true or false", "legacy_keyless")
        extra["legacy_keyless"] = legacy
    else:
        for key in ("trusted_root", "legacy_keyless"):
            if key in table:
                raise fail(f"{key} is only used with keyless identities", key)
    return extra


def parse_aliases(doc: dict[str, Any], fail: Any) -> tuple[tuple[str, ...], ...]:
    """The [[alias]] tables: each `names` lists spellings of one registry."""
    tables = doc.get("alias", [])
    if not isinstance(tables, list):
        raise fail("'alias' must be an array of tables, written [[alias]]", None, "alias")
    groups = []
    for table in tables:
        names = table.get("names") if isinstance(table, dict) else None
        if (not isinstance(names, list) or len(names) < 2 or set(table) != {"names"}
                or not all(isinstance(n, str) and n and "/" not in n for n in names)):
            raise fail("[[alias]] takes names = [\"REGISTRY\", \"OTHER-SPELLING\", ...]",
                       None, "names")
        groups.append(tuple(names))
    return tuple(groups)


def _read(path: str, *, system: bool
          ) -> tuple[tuple[Rule, ...], tuple[tuple[str, ...], ...]] | None:
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise PolicyError(f"trust policy {path}: cannot read: {err.strerror}") from err
    from ebpm.trust.modes import check_trusted_file

    check_trusted_file(path, "trust policy")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PolicyError(f"trust policy {path}: not UTF-8 text") from err
    return _parse(text, path, system=system, doc=_saved_document(path, text))


# The TOML document of a policy file as ebpm last wrote it (`ebpm trust add|rm`, `ebpm key
# generate --trust`), kept beside it as JSON with the text it was parsed from; never written
# when a policy is only read. It is used only for exactly that text, and only if it passes the
# policy file's own trust check (owner, modes, directories: ebpm.trust.modes); else the text is
# parsed (a hand edit, /etc's file, a saved document gone or unreadable: it is safe to delete).
# What stops a saved document whose document says other than its text: that check, which
# whoever could write it passes for policy.toml too (the same directory, the same rule), so it
# grants no one a policy they could not write anyway. tomllib and what it brings (string,
# datetime, their patterns) cost every command that reads the policy ~3-5 ms, the JSON ~0.5 ms
# (docs/architecture.md, the pull's eighth round).
_SAVED_VERSION = 1


def saved_document_path(path: str) -> str:
    """Where the parsed form of the policy file `path` is kept: `.policy.toml.json` beside it."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}.json")


def _saved_document(path: str, text: str) -> dict[str, Any] | None:
    """The document saved for exactly `text`, if there is a trusted one; else None."""
    saved_path = saved_document_path(path)
    cap = 8 * len(text) + (64 << 10)  # (JSON of the text and of its document: a few times it)
    try:
        with open(saved_path, "rb") as fh:
            data = fh.read(cap + 1)
        saved = json.loads(data) if len(data) <= cap else None
    except (OSError, ValueError, RecursionError):
        return None
    if not (isinstance(saved, dict) and saved.get("v") == _SAVED_VERSION
            and saved.get("text") == text and isinstance(saved.get("document"), dict)):
        return None
    from ebpm.trust.modes import check_trusted_file

    try:
        check_trusted_file(saved_path, "parsed trust policy")
    except (PolicyError, OSError):
        return None  # others may write it (or it is gone): the text is parsed instead
    document: dict[str, Any] = saved["document"]
    return document


def _save_document(path: str, text: str) -> None:
    """Keep the TOML document of `text` (just written to `path`) beside it, when JSON holds it
    exactly (TOML's dates and times, or a NaN, it does not: then nothing is kept)."""
    from ebpm.files import atomic_write

    try:
        data = json.dumps({"v": _SAVED_VERSION, "text": text, "document": _toml(text, path)},
                          allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError, PolicyError):
        data = None
    saved_path = saved_document_path(path)
    with contextlib.suppress(OSError):  # (the policy is written: its parsed form is optional)
        if data is None:
            os.unlink(saved_path)
        else:
            atomic_write(saved_path, data)


def load_policy() -> Policy:
    """The effective policy from the system and user files (either may be absent)."""
    rules: list[Rule] = []
    files: list[str] = []
    aliases: list[tuple[str, ...]] = []
    for path, system in ((system_policy_path(), True), (user_policy_path(), False)):
        parsed = _read(path, system=system)
        if parsed is not None:
            rules.extend(parsed[0])
            aliases.extend(parsed[1])
            files.append(path)
    return Policy(tuple(rules), tuple(files), tuple(aliases))


# -- editing the user's policy ----------------------------------------------------------------

_HEADER = (
    "# ebpm trust policy (edit with `ebpm trust add|rm`; see docs/signing.md).\n"
    "# scope: a glob over registry/repository; keys: public key files or inline PEM;\n"
    "# require: false accepts unsigned packages in the scope.\n\n"
)


def _raw_tables(path: str, *, check: bool = True) -> list[dict[str, Any]]:
    """The [[trust]] tables of the user's file. `check`: refuse a file with any error (the
    error points to the line); without it only TOML syntax is needed, so that `trust rm` can
    take a broken rule out."""
    if not os.path.exists(path):
        return []
    if check:
        _read(path, system=False)
    import tomllib

    try:
        doc = tomllib.loads(read_bytes(path).decode())
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{path}: {err}", hint="fix the TOML syntax by hand") from err
    return [dict(t) for t in doc.get("trust", []) if isinstance(t, dict)]


def _write_tables(path: str, tables: list[dict[str, Any]], *, check: bool = True) -> None:
    """Write the user's policy with `tables`, atomically; with `check`, only a policy that
    parses (keys readable, scopes valid): a failed `trust add` leaves the file as it was."""
    import tomllib

    import tomli_w

    from ebpm.files import atomic_write

    aliases = (tomllib.loads(read_bytes(path).decode()).get("alias", [])
               if os.path.exists(path) else [])
    doc: dict[str, Any] = {"alias": aliases} if aliases else {}
    if tables:
        doc["trust"] = tables
    text = _HEADER + (tomli_w.dumps(doc) if doc else "")
    if check:
        parse_policy(text, path)  # raises before anything is written
    atomic_write(path, text)
    _save_document(path, text)


def _key_value(key_path: str | os.PathLike[str], policy_path: str) -> str:
    from pathlib import Path

    resolved = Path(key_path).resolve()
    try:
        return str(resolved.relative_to(Path(policy_path).parent.resolve()))
    except ValueError:
        return str(resolved)


def qualify_scope(scope: str) -> str:
    """A scope without a registry part (`tools/*`) means the default registry's repositories,
    as a short reference does; scopes that start with a wildcard stay as they are."""
    first = scope.split("/", 1)[0]
    if first.startswith("*") or "." in first or ":" in first or first == "localhost":
        return scope
    from ebpm import config

    return f"{config.default_registry()}/{scope}"


def add_trust(scope: str, key_path: str | os.PathLike[str] | None, *, require: bool = True,
              path: str | os.PathLike[str] | None = None) -> Rule:
    """Trust `key_path` for `scope` in the user's policy (adding to a rule of the same scope).
    A scope without a registry part is qualified with the default registry."""
    path = os.fspath(path) if path else user_policy_path()
    given, scope = scope, qualify_scope(scope)
    # '' (qualified: 'REGISTRY/') or 'a//b': a segment left empty, which no repository fills
    if not _valid_scope(given) or "" in scope.split("/")[1:]:
        raise PolicyError(f"invalid scope {given!r}",
                          hint="a glob over registry/repository, e.g. localhost:5000/tools/**")
    host, _, repositories = scope.partition("/")
    if repositories != repositories.lower():
        raise PolicyError(
            f"invalid scope {given!r}: repository names are lowercase, so it would match "
            "nothing",
            hint=f"ebpm trust add '{host}/{repositories.lower()}' ...")
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
    rules = parse_policy(read_bytes(path).decode(), path)
    return next(r for r in rules if r.scope == scope)


def remove_trust(scope: str, key_path: str | os.PathLike[str] | None = None, *,
                 path: str | os.PathLike[str] | None = None) -> int:
    """Remove the rule for `scope` (or only `key_path` from it); returns what was removed."""
    path = os.fspath(path) if path else user_policy_path()
    tables = _raw_tables(path, check=False)  # works on a policy broken by another rule
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
        _write_tables(path, kept, check=False)
    return removed


def trust_key(scope: str, key: str | None, *, require: bool = True) -> Rule:
    """`ebpm trust add SCOPE [--key KEY] [--optional]`: KEY is a key name or a public key path."""
    from ebpm.trust.keys import find_public, load_public

    path = find_public(key) if key else None
    if path is not None:  # a key that is no key is refused before the policy is touched
        try:
            pem = path.read_bytes()
        except OSError as err:
            raise PolicyError(f"trust add: cannot read {path}: {err.strerror}") from err
        load_public(pem, where=str(path))
    return add_trust(scope, path, require=require)


def untrust_key(scope: str, key: str | None = None) -> None:
    """`ebpm trust rm SCOPE [--key KEY]`: remove SCOPE's rule (or KEY from it); UsageError when
    the user's policy has no such rule."""
    from ebpm.errors import UsageError
    from ebpm.trust.keys import find_public

    if not remove_trust(scope, find_public(key) if key else None):
        raise UsageError(f"trust rm: no rule for {scope!r}" + (f" with key {key}" if key else "")
                         + f" in {user_policy_path()}", hint="`ebpm trust list` shows the rules")
