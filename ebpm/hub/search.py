"""Ranked search over the index: names, descriptions, README text, program types, attach points.

Every word of the query must match somewhere; a word matches more strongly in the name than in
the description, and there more than in the README. `type:target` words (`tracepoint:sched`,
`xdp`, `uprobe:libc`) match programs: their kind and the start of their attach point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ebpm.hub.index import short_name

if TYPE_CHECKING:
    from ebpm.hub.index import HubIndex, IndexedVersion

__all__ = ["Hit", "search", "hooks_of"]

_WORD = re.compile(r"[a-z0-9_]+")

# weights: the name above everything, then programs, description, README
_NAME_EXACT, _NAME_PREFIX, _NAME_PART = 100, 60, 40
_HOOK_EXACT, _HOOK_PREFIX, _HOOK_PART = 50, 35, 15
_DESCRIPTION_WORD, _DESCRIPTION_PART = 20, 10
_README_EACH, _README_MAX = 2, 10
_OTHER = 5  # license, authors, repository path


@dataclass(frozen=True)
class Hit:
    """One package found: its latest version and why it matched."""

    repository: str
    version: str
    digest: str
    description: str
    license: str
    signed: bool
    types: tuple[str, ...]
    score: int
    matched: tuple[str, ...]  # the fields that matched: name, program, description, readme...

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.version.replace('+', '_')}"

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "version": self.version, "digest": self.digest,
                "reference": self.reference, "description": self.description,
                "license": self.license, "signed": self.signed, "types": list(self.types),
                "score": self.score, "matched": list(self.matched)}


def hooks_of(version: IndexedVersion) -> list[str]:
    """`type:attach` of each program (`tracepoint:sched/sched_process_exec`), or its type."""
    out = []
    for program in version.config.programs:
        out.append(f"{program.type}:{program.attach}" if program.attach else program.type)
    return sorted(set(out))


def _score_word(word: str, doc: _Document) -> tuple[int, str]:
    """The best score `word` gets in `doc`, and the field it got it in (0 when absent)."""
    best, where = 0, ""

    def take(score: int, field: str) -> None:
        nonlocal best, where
        if score > best:
            best, where = score, field

    if word == doc.name:
        take(_NAME_EXACT, "name")
    elif doc.name.startswith(word):
        take(_NAME_PREFIX, "name")
    elif word in doc.name:
        take(_NAME_PART, "name")
    for hook in doc.hooks:
        kind, _, target = hook.partition(":")
        if ":" in word:
            want_kind, _, want_target = word.partition(":")
            if kind == want_kind and target.startswith(want_target):
                take(_HOOK_EXACT if target == want_target else _HOOK_PREFIX, "program")
            elif kind == want_kind and want_target in target:
                take(_HOOK_PART, "program")
        elif word == kind:
            take(_HOOK_EXACT, "program")
        elif any(part.startswith(word) for part in re.split(r"[/:_]", target) if part):
            take(_HOOK_PREFIX, "program")
        elif word in hook:
            take(_HOOK_PART, "program")
    if word in doc.description_words:
        take(_DESCRIPTION_WORD, "description")
    elif word in doc.description:
        take(_DESCRIPTION_PART, "description")
    if word in doc.other:
        take(_OTHER, "metadata")
    if best < _README_MAX and word in doc.readme:
        take(min(_README_MAX, _README_EACH * doc.readme.count(word)), "readme")
    return best, where


@dataclass(frozen=True)
class _Document:
    version: IndexedVersion
    name: str
    description: str
    description_words: frozenset[str]
    hooks: tuple[str, ...]
    readme: str
    other: str


def _document(version: IndexedVersion) -> _Document:
    config = version.config
    description = config.description.lower()
    return _Document(
        version=version,
        name=short_name(version.repository).lower(),
        description=description,
        description_words=frozenset(_WORD.findall(description)),
        hooks=tuple(h.lower() for h in hooks_of(version)),
        readme=version.readme.lower(),
        other=" ".join([version.repository, config.license, *config.authors]).lower(),
    )


def search(index: HubIndex, query: str, *, limit: int | None = None) -> list[Hit]:
    """The packages matching every word of `query`, best first (then by name)."""
    words = [w for w in query.lower().split() if w]
    hits: list[Hit] = []
    for version in index.packages():
        doc = _document(version)
        total, fields = 0, []
        for word in words:
            score, field = _score_word(word, doc)
            if score == 0:
                break
            total += score
            fields.append(field)
        else:
            if not words:
                total = 1
            config = version.config
            hits.append(Hit(
                repository=version.repository, version=config.version, digest=version.digest,
                description=config.description, license=config.license,
                signed=version.signature.signed,
                types=tuple(sorted({p.type for p in config.programs})),
                score=total, matched=tuple(dict.fromkeys(fields)),
            ))
    hits.sort(key=lambda h: (-h.score, h.repository))
    return hits[:limit] if limit is not None else hits
