"""Map snapshots: the maps that carry a package's results (counters, log2 histograms), decoded
by their BTF key and value types with per-CPU values summed, optionally emptied after a read."""

from __future__ import annotations

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.btf import Btf
from ebpm.loader.decode import Decoder, compile_decoder, fields_of
from ebpm.loader.display import is_scratch_map
from ebpm.record import record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = ["MapSnapshot", "ResultMaps", "since"]

_RESULT_MAP_TYPES = ("hash", "array", "percpu_hash", "percpu_array", "lru_hash",
                     "lru_percpu_hash")
_ARRAY_TYPES = ("array", "percpu_array")  # elements cannot be deleted: zeroed instead
# what a result map's name holds, in any case (str methods, not a pattern: `ebpm run` checks
# the maps while libbpf loads, on the way to the first event, where a pattern's compile cost
# ~0.2-0.4 ms)
_RESULT_WORDS = ("hist", "count", "stat", "total", "result", "summary")


def _named_like_a_result(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _RESULT_WORDS)


@record
class MapSnapshot:
    """The decoded contents of a result map: `hist` when values carry log2 `slots`."""

    name: str
    kind: str  # "hist" or "table"
    rows: tuple[tuple[Any, Any], ...]
    unit: str = ""  # of a histogram's values: declared, inferred or "" (unknown)


class ResultMaps:
    """The result maps of a loaded object: the ones the package names (`[display] results`);
    else those named like results (hist, count...) or holding histograms; without those and
    without event streams, every plain hash/array map that is not scratch state (start
    timestamps, saved arguments: `ebpm.loader.display.is_scratch_map`)."""

    def __init__(self, obj: libbpf.BpfObject, btf: Btf, event_maps: Sequence[str],
                 results: Sequence[str] = (), unit: str = "") -> None:
        self.btf = btf
        self.unit = unit
        self._maps: list[tuple[libbpf.Map, Decoder | None, Decoder | None]] = []
        candidates = []
        for m in obj.maps:
            if m.internal or m.name in event_maps or m.type_name not in _RESULT_MAP_TYPES:
                continue
            if results and m.name not in results:
                continue
            candidates.append(m)
        if results:
            missing = sorted(set(results) - {m.name for m in candidates})
            if missing:
                raise LoadError(
                    f"[display] results: no hash or array map named {', '.join(missing)}",
                    hint="maps: " + ", ".join(m.name for m in obj.maps if not m.internal))
            order = {name: i for i, name in enumerate(results)}
            self._maps = [self._decoded(m) for m in sorted(candidates,
                                                             key=lambda m: order[m.name])]
            return
        # decoders compiled only for the maps shown (named like results, or holding log2
        # `slots`), not for a tool's scratch maps (start timestamps, saved arguments)
        wanted = [c for c in (self._decoded(m) for m in candidates
                              if _named_like_a_result(m.name)
                              or self._has_slots(m.btf_value_type_id))
                  if _named_like_a_result(c[0].name)
                  or (c[2] is not None and "slots" in c[2].fields)]
        if not wanted and not event_maps:
            shown = [m for m in candidates if not is_scratch_map(m.name)] or candidates
            wanted = [self._decoded(m) for m in shown]
        self._maps = wanted

    def _has_slots(self, type_id: int) -> bool:
        try:
            return "slots" in fields_of(self.btf, type_id)
        except LoadError:
            return False

    def _decoded(self, m: libbpf.Map) -> tuple[libbpf.Map, Decoder | None, Decoder | None]:
        return m, self._decoder(m.btf_key_type_id), self._decoder(m.btf_value_type_id)

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
            # the whole walk first: deleting during a walk makes the kernel restart it, and the
            # same keys come back (133 rows for 87 keys); then each key read (and emptied) once
            for key in dict.fromkeys(list(m.keys())):
                value = m.lookup(key)
                if value is None:
                    continue
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
            out.append(MapSnapshot(m.name, kind, tuple(rows), self.unit if kind == "hist" else ""))
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


def since(now: MapSnapshot, before: MapSnapshot | None) -> MapSnapshot:
    """What `now` counted since `before`, two snapshots of one map that is never emptied (the
    agent's): each row's numbers less the earlier ones, rows that counted nothing left out, as
    a snapshot taken with `clear` at `before` would have shown it."""
    earlier = {repr(k): v for k, v in before.rows} if before is not None else {}
    rows = []
    for key, value in now.rows:
        prev = earlier.get(repr(key))
        diff = value if prev is None else _less(value, prev)
        if _counted(diff) if _has_numbers(diff) else diff != prev:
            rows.append((key, diff))
    return MapSnapshot(now.name, now.kind, tuple(rows), now.unit)


def _less(now: Any, before: Any) -> Any:
    """`now` less `before`, number by number (lists padded with zeros); the rest as `now`."""
    if isinstance(now, bool) or isinstance(before, bool):
        return now
    if isinstance(now, int) and isinstance(before, int):
        return now - before
    if isinstance(now, list) and isinstance(before, list):
        pad = [0] * (len(now) - len(before))
        return [_less(a, b) for a, b in zip(now, before + pad, strict=False)]
    if isinstance(now, dict) and isinstance(before, dict):
        return {k: _less(v, before[k]) if k in before else v for k, v in now.items()}
    return now


def _has_numbers(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_numbers(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_numbers(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool)


def _counted(value: Any) -> bool:
    """Whether a difference holds a number other than 0."""
    if isinstance(value, dict):
        return any(_counted(v) for v in value.values())
    if isinstance(value, list):
        return any(_counted(v) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value != 0


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
