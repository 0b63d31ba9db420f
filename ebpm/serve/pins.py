"""Programs that outlive the agent: where their pins live, and the agent's record of them.

A program started with `persist` has its links and maps pinned under the agent's own bpffs
directory (`PIN_ROOT/AGENT/ID-GENERATION`, bpffs mounted first if needed), and an entry in the
agent's state file (`STATE_DIR/programs.json`: reference, digest, flags, pin directory). After a
restart the agent adopts every entry whose pins are still there; stopping the program removes
its pins and its entry.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ebpm.errors import UsageError

__all__ = ["Persisted", "Persistence", "default_pin_root", "default_state_dir"]

log = logging.getLogger("ebpm.serve")
_STATE_FILE = "programs.json"
_FORMAT = 1


def default_pin_root(agent: str) -> Path:
    """/sys/fs/bpf/ebpm/AGENT: this agent's pins, apart from every other agent's."""
    return Path("/sys/fs/bpf/ebpm") / agent


def default_state_dir(agent: str) -> Path:
    """/var/lib/ebpm/agent/AGENT for root, else under ebpm's data directory."""
    if os.geteuid() == 0 and not os.environ.get("EBPM_DATA"):
        return Path("/var/lib/ebpm/agent") / agent
    from ebpm import config

    return Path(config.data_dir(), "agent", agent)


@dataclass(frozen=True)
class Persisted:
    """One program that outlives the agent."""

    id: str
    ref: str
    digest: str
    args: tuple[str, ...]
    allow_unsigned: bool
    pins: str  # the pin directory
    attached: tuple[str, ...] = ()
    created: float = 0.0
    swaps: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Persisted:
        return cls(id=str(data["id"]), ref=str(data["ref"]), digest=str(data["digest"]),
                   args=tuple(data.get("args", ())),
                   allow_unsigned=bool(data.get("allow_unsigned", False)),
                   pins=str(data["pins"]), attached=tuple(data.get("attached", ())),
                   created=float(data.get("created", 0.0)), swaps=int(data.get("swaps", 0)))


@dataclass
class Persistence:
    """The agent's pin root and state file."""

    pin_root: Path
    state_dir: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _made: list[Path] = field(default_factory=list)  # directories prepare() made, deepest first

    def prepare(self) -> None:
        """Mount bpffs if needed and make the agent's pin directory (before the first pin)."""
        from ebpm.loader.environment import BPFFS, ensure_bpffs

        if self.pin_root.is_relative_to(BPFFS):
            ensure_bpffs()
        made = [d for d in (self.pin_root, *self.pin_root.parents) if not d.exists()]
        self.pin_root.mkdir(parents=True, exist_ok=True)
        self._made.extend(d for d in made if d not in self._made)

    def tidy(self) -> None:
        """Remove the agent's pin directory when nothing is pinned in it any more, and the
        empty directories above it that this agent made (`/sys/fs/bpf/ebpm`)."""
        for d in dict.fromkeys([self.pin_root, *self._made]):  # (deepest first)
            try:
                d.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                break  # still holding persisted programs

    def pin_dir(self, program_id: str, generation: int) -> Path:
        return self.pin_root / f"{program_id}-{generation}"  # bpffs refuses "." in names

    @property
    def state_file(self) -> Path:
        return self.state_dir / _STATE_FILE

    def load(self) -> list[Persisted]:
        """The recorded programs (none when there is no state file yet)."""
        try:
            doc = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as err:
            raise UsageError(f"{self.state_file}: unreadable agent state: {err}",
                             hint="move it aside to start without the persisted programs") \
                from err
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise UsageError(f"{self.state_file}: not an agent state file of format {_FORMAT}")
        return [Persisted.from_dict(p) for p in doc.get("programs", [])]

    def _save(self, programs: list[Persisted]) -> None:
        from ebpm.files import PRIVATE_DIR_MODE, PRIVATE_MODE, atomic_write

        doc = {"format": _FORMAT, "programs": [asdict(p) for p in programs]}
        atomic_write(self.state_file, json.dumps(doc, indent=2, sort_keys=True) + "\n",
                     mode=PRIVATE_MODE, dir_mode=PRIVATE_DIR_MODE)

    def record(self, entry: Persisted) -> None:
        with self._lock:
            programs = [p for p in self.load() if p.id != entry.id]
            self._save([*programs, entry])

    def forget(self, program_id: str) -> None:
        with self._lock:
            programs = self.load()
            kept = [p for p in programs if p.id != program_id]
            if len(kept) != len(programs):
                self._save(kept)
