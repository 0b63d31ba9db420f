"""The one JSON serialization ebpm publishes and hashes: sorted keys, no spaces, UTF-8."""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


__all__ = ["canonical_json"]


def canonical_json(value: Any) -> bytes:
    """Serialize `value` canonically; equal values give equal bytes (and digests)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
