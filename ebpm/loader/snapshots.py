"""Map snapshots: the maps that carry a package's results (counters, log2 histograms), decoded
by their BTF key and value types with per-CPU values summed, optionally emptied after a read."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.btf import Btf
from ebpm.loader.decode import Decoder, compile_decoder

__all__ = ["MapSnapshot", "ResultMaps"]

_RESULT_MAP_TYPES = ("hash", "array", "percpu_hash", "percpu_array", "lru_hash",
                     "lru_percpu_hash")
_ARRAY_TYPES = ("array", "percpu_array")  # elements cannot be deleted: zeroed instead
_RESULT_NAMES = re.compile(r"hist|count|stat|total|result|summary", re.IGNORECASE)


@dataclass(frozen=True)
class MapSnapshot:
    """The decoded contents of a result map: `hist` when values carry log2 `slots`."""

    name: str
    kind: str  # "hist" or "table"
    rows: tuple[tuple[Any, Any], ...]


class ResultMaps:
    """The result maps of a loaded object: named like results (hist, count...) or holding
    histograms; without those and without event streams, every plain hash/array map."""

    def __init__(self, obj: libbpf.BpfObject, btf: Btf, event_maps: Sequence[str]) -> None:
        self.btf = btf
        candidates = []
        for m in obj.maps:
            if m.internal or m.name in event_maps or m.type_name not in _RESULT_MAP_TYPES:
                continue
            key = self._decoder(m.btf_key_type_id)
            value = self._decoder(m.btf_value_type_id)
            candidates.append((m, key, value))
        wanted = [c for c in candidates if _RESULT_NAMES.search(c[0].name)
                  or (c[2] is not None and "slots" in c[2].fields)]
        self._maps: list[tuple[libbpf.Map, Decoder | None, Decoder | None]] = (
            wanted if (wanted or event_maps) else candidates)

    def _decoder(self, type_id: int) -> Decoder | None:
        if not type_id:
            return None
        try:
            return compile_decoder(self.btf, type_id)
        except LoadError:
            return None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m, _, _ in self._maps)

    def snapshot(self, *, clear: bool = False) -> list[MapSnapshot]:
        """Decoded contents (per-CPU values summed); `clear` empties the maps afterwards, so
        that the next snapshot holds one interval's counts."""
        out = []
        ncpu = libbpf.num_possible_cpus()
        for m, kdec, vdec in self._maps:
            rows = []
            stride = m.cpu_stride
            for key, value in m.items():
                k = kdec.decode(key) if kdec else key.hex()
                if m.per_cpu:
                    parts = [value[i * stride : i * stride + m.value_size] for i in range(ncpu)]
                    v = _sum([vdec.decode(p) for p in parts]) if vdec else parts[0].hex()
                else:
                    v = vdec.decode(value) if vdec else value.hex()
                rows.append((k, v))
                if clear:
                    if m.type_name in _ARRAY_TYPES:
                        m.update(key, bytes(len(value)))
                    else:
                        m.delete(key)
            if m.type_name in _ARRAY_TYPES:
                rows = [r for r in rows if _nonzero(r[1])]
            rows.sort(key=lambda r: _sort_key(r[0]))
            kind = "hist" if vdec is not None and "slots" in vdec.fields else "table"
            out.append(MapSnapshot(m.name, kind, tuple(rows)))
        return out


def _sum(values: list[Any]) -> Any:
    """Per-CPU values added up (ints, lists of ints, dicts of those); others: CPU 0's."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, list, dict)):
        return first
    if isinstance(first, int):
        return sum(values)
    if isinstance(first, list):
        return [_sum([v[i] for v in values]) for i in range(len(first))]
    return {k: _sum([v[k] for v in values]) for k in first}


def _nonzero(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_nonzero(v) for v in value.values())
    if isinstance(value, list):
        return any(_nonzero(v) for v in value)
    return bool(value)


def _sort_key(key: Any) -> Any:
    if isinstance(key, dict):
        return tuple(str(v) for v in key.values())
    return (str(type(key)), key) if not isinstance(key, (int, str)) else (0, str(key).zfill(20))
