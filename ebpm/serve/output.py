"""An iterator program's output read on request (`GET /v1/programs/{id}/output`): each of the
program's iterators run anew, to its end, as `cat` of its pinned file would, and what it wrote
streamed as NDJSON records of its lines, within a cap on the bytes and the seconds one read
may take (so a huge output costs the agent one chunk of memory and a bounded time), and at
most `ebpm serve --max-output-reads` reads at once in the agent (each holds the kernel's
iterators and a worker thread while it reads; one more is answered 503 with Retry-After:
`ebpm.serve.slots`).

    {"iter": PROGRAM, "line": TEXT}                  a line, without its newline
    {"iter": PROGRAM, "line": TEXT, "partial": true} text the next record continues (a line
                                                     over LINE_MAX, or the end without newline)
    {"iter": PROGRAM, "line": TEXT, "bytes": B64}    a line that is not UTF-8: TEXT with its
                                                     bad bytes replaced, B64 its exact bytes
    {"_ebpm": "end", "output": {PROGRAM: BYTES}, "truncated": null | "limit" | "time"}

The records are `ebpm run --json`'s for an iterator (plus "partial", so that a client puts
the bytes back together exactly: `ebpm run --agent`, `ebpm.run.lines.record_bytes`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from ebpm.run.lines import Lines, record

__all__ = ["MAX_OUTPUT", "MAX_SECONDS", "records"]

MAX_OUTPUT = 16 << 20  # bytes one read returns at most (the program's iterators together)
MAX_SECONDS = 30.0  # seconds one read may run its iterators
_CHUNK = 64 << 10  # bytes asked of the kernel at a time


def _encode(item: dict[str, Any]) -> str:
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False) + "\n"


def _encoded(program: str, pieces: list[tuple[bytes, bool]]) -> str:
    return "".join(_encode(record(program, text, partial)) for text, partial in pieces)


async def records(open_all: Callable[[], Sequence[tuple[str, Any]] | None], *,
                  limit: int = MAX_OUTPUT, seconds: float = MAX_SECONDS) -> AsyncIterator[str]:
    """The NDJSON records of the iterators `open_all()` makes ((program, `BpfIterator`), None
    when the run is over), opened as the answer begins and read in order, each to its end or
    until `limit` bytes (all together) or `seconds` are spent; every one is closed at the end,
    also when the client goes away. The kernel is read in a worker thread."""
    from starlette.concurrency import run_in_threadpool

    deadline = time.monotonic() + seconds
    sizes: dict[str, int] = {}
    total = 0
    truncated: str | None = None
    end: dict[str, Any] = {"_ebpm": "end"}
    opened = await run_in_threadpool(open_all)
    if opened is None:  # (it ended since the request was checked)
        opened = ()
        end["error"] = "the program's run is over"
        truncated = "error"
    try:
        for name, it in opened:
            sizes[name] = 0
            lines = Lines()
            try:
                while truncated is None:
                    if time.monotonic() >= deadline:
                        truncated = "time"
                        break
                    if total >= limit:  # the limit: cut only when there is more
                        if await run_in_threadpool(it.read, 1):
                            truncated = "limit"
                        break
                    chunk = await run_in_threadpool(it.read, min(_CHUNK, limit - total))
                    if not chunk:
                        break
                    total += len(chunk)
                    sizes[name] += len(chunk)
                    text = _encoded(name, lines.feed(chunk))
                    if text:
                        yield text
            except Exception as err:  # (the answer has begun: the end record says it)
                end["error"] = f"{name}: {getattr(err, 'message', None) or err}"
                truncated = "error"
            rest = _encoded(name, lines.end())
            if rest:
                yield rest
            if truncated is not None:
                break
    finally:
        for _, it in opened:
            it.close()
    end.update(output=sizes, truncated=truncated)
    yield _encode(end)
