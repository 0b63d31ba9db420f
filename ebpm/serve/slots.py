"""A cap on the long answers under way at once in the agent (iterator reads, event streams):
one more is refused (503, with Retry-After and a hint naming the `ebpm serve` option that sets
the cap) without touching the kernel or the program's fan-out; a place is given back when its
answer is over: read to its end, failed, or its client gone (`ebpm.serve.app`'s `Held`).

Every use is on the server's event loop, so the count needs no lock.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RETRY_AFTER", "Slots"]

RETRY_AFTER = 1  # seconds a refused request is told to wait


class Slots:
    """At most `most` answers of one kind (`what`, e.g. "output reads") at once."""

    def __init__(self, most: int, what: str, option: str) -> None:
        self.most, self.what, self.option = most, what, option
        self.used = 0

    def take(self) -> dict[str, Any] | None:
        """Take a place (None), or the refusal's body when all are taken."""
        if self.used >= self.most:
            return {"error": f"{self.what} under way in the agent: {self.used}, the most it "
                    "runs at once",
                    "hint": f"try again in {RETRY_AFTER} s (Retry-After); the agent's "
                    f"{self.option} sets the cap"}
        self.used += 1
        return None

    def give_back(self) -> None:
        self.used -= 1
