"""Log2 histograms as text, in the layout of libbpf-tools' print_log2_hist."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["log2_hist_lines"]

_WIDTH = 40


def log2_hist_lines(slots: Sequence[int], unit: str = "value") -> list[str]:
    """Rows `low -> high : count |****|`; slot i counts values in [2**i, 2**(i+1) - 1]."""
    last = max((i for i, v in enumerate(slots) if v), default=-1)
    if last < 0:
        return []
    peak = max(slots[: last + 1])
    narrow = last <= 32
    pad, label, num = (5, 19, 10) if narrow else (15, 29, 20)
    lines = [f"{'':{pad}}{unit:<{label}} : count    distribution"]
    for i in range(last + 1):
        low, high = (1 << (i + 1)) >> 1, (1 << (i + 1)) - 1
        if low == high:
            low -= 1
        count = slots[i]
        bar = "*" * (count * _WIDTH // peak)
        lines.append(f"{low:>{num}} -> {high:<{num}} : {count:<8} |{bar:<{_WIDTH}}|")
    return lines
