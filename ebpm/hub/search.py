"""Ranked search over the index: names, descriptions, README text, program types, attach points.

It reads only the index's small search file (the latest version of each repository, written
with the index), so `ebpm search` parses no package config and imports no signing code. Every
word of the query must match somewhere; a word matches more strongly in the name than in the
programs, there more than in the description, and there more than in the README.
`type:target` words (`tracepoint:sched`, `uprobe:/usr/lib`) match programs: their kind and the
start of their attach point.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebpm.errors import StoreError
from ebpm.hub.index import SEARCH_FILE, hub_dir, short_name

__all__ = ["Hit", "Document", "load_documents", "search"]

_WORD = re.compile(r"[a-z0-9_]+")
_SPLIT = re.compile(r"[/:_.]")

# weights: the name above everything, then programs, description, README
_NAME_EXACT, _NAME_PREFIX, _NAME_PART = 100, 60, 40
_HOOK_EXACT, _HOOK_PREFIX, _HOOK_PART = 50, 35, 15
_DESCRIPTION_WORD, _DESCRIPTION_PART = 20, 10
_README_EACH, _README_MAX = 2, 10
_OTHER = 5  # license, authors, repository path
_KIN = 5  # a program of a kindred kind (tp_btf for "tracepoint") scores this much less

# program kinds a query's kind also stands for: `tracepoint:sched` finds tp_btf/raw_tp
# programs on sched events too (ebpm.build.sections' hook families)
_FAMILY = {
    "tracepoint": ("tracepoint", "raw_tracepoint", "tp_btf"),
    "tp": ("tracepoint", "raw_tracepoint", "tp_btf"),
    "raw_tp": ("raw_tracepoint",),
    "kprobe": ("kprobe", "fentry"),
    "kretprobe": ("kretprobe", "fexit"),
}


@dataclass(frozen=True)
class Hit:
    """One package found: its latest version and why it matched."""

    repository: str
    version: str
    tag: str
    digest: str
    description: str
    license: str
    signed: bool
    types: tuple[str, ...]
    score: int
    matched: tuple[str, ...]  # the fields that matched: name, program, description, readme...

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "version": self.version, "digest": self.digest,
                "reference": self.reference, "description": self.description,
                "license": self.license, "signed": self.signed, "types": list(self.types),
                "score": self.score, "matched": list(self.matched)}


@dataclass(frozen=True)
class Document:
    """A package as search sees it (lowercased text for matching, the rest for showing)."""

    raw: dict[str, Any]
    name: str
    description: str
    description_words: frozenset[str]
    hooks: tuple[str, ...]
    readme: str
    other: str

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Document:
        description = str(raw.get("description", "")).lower()
        repository = str(raw["repository"])
        return cls(
            raw=raw, name=short_name(repository).lower(), description=description,
            description_words=frozenset(_WORD.findall(description)),
            hooks=tuple(str(h).lower() for h in raw.get("hooks", ())),
            readme=str(raw.get("readme", "")).lower(),
            other=" ".join([repository, str(raw.get("license", "")),
                            *map(str, raw.get("authors", ()))]).lower(),
        )


def load_documents(directory: Path | None = None) -> list[Document]:
    """The search file of the index in the store ([] when nothing was indexed yet)."""
    path = (directory or hub_dir()) / SEARCH_FILE
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except ValueError as err:
        raise StoreError(f"hub search file {path}: not valid JSON: {err}",
                         hint="run `ebpm hub refresh` to write it again") from err
    if not isinstance(raw, list):
        raise StoreError(f"hub search file {path}: damaged", hint="run `ebpm hub refresh`")
    return [Document.of(d) for d in raw if isinstance(d, dict) and "repository" in d]


def _score_word(word: str, doc: Document) -> tuple[int, str]:
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
            kin = 0 if kind == want_kind else _KIN
            if kin and kind not in _FAMILY.get(want_kind, ()):
                continue
            if target.startswith(want_target):
                take((_HOOK_EXACT if target == want_target else _HOOK_PREFIX) - kin, "program")
            elif want_target in target:
                take(_HOOK_PART - kin, "program")
        elif word == kind:
            take(_HOOK_EXACT, "program")
        elif kind in _FAMILY.get(word, ()):
            take(_HOOK_EXACT - _KIN, "program")
        elif any(part.startswith(word) for part in _SPLIT.split(target) if part):
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


def search(documents: list[Document], query: str, *, limit: int | None = None) -> list[Hit]:
    """The packages matching every word of `query`, best first (then by name)."""
    words = [w for w in query.lower().split() if w]
    hits: list[Hit] = []
    for doc in documents:
        total, fields = 0, []
        for word in words:
            score, field = _score_word(word, doc)
            if score == 0:
                break
            total += score
            fields.append(field)
        else:
            raw = doc.raw
            hits.append(Hit(
                repository=str(raw["repository"]), version=str(raw.get("version", "")),
                tag=str(raw.get("tag", "")), digest=str(raw.get("digest", "")),
                description=str(raw.get("description", "")),
                license=str(raw.get("license", "")), signed=bool(raw.get("signed")),
                types=tuple(raw.get("types", ())), score=total if words else 1,
                matched=tuple(dict.fromkeys(fields)),
            ))
    hits.sort(key=lambda h: (-h.score, h.repository))
    return hits[:limit] if limit is not None else hits
