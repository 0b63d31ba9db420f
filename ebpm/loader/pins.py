"""Pins in bpffs: a session's links and maps pinned in a directory so that its programs outlive
the process, a session adopted back from those pins, and the pins removed.

`pin_session` pins every link (`link-PROGRAM`) and every non-internal map (`map-NAME`):
closing the session then closes this process's fds, and the pins keep the programs attached
(libbpf 1.x closes a perf-event link's fds without disabling the event).
`adopt_session` opens the object again without loading it and points its maps at the pinned
ones: events and map snapshots work as in the original session, its iterator programs run
through their pinned links, and closing it leaves the pins.
`remove_pins` deletes the directory: the kernel then detaches and frees what nothing else holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ebpm.errors import LoadError
from ebpm.loader import libbpf
from ebpm.loader.btf import Btf
from ebpm.loader.libbpf.links import Link, open_pinned
from ebpm.loader.loading import OBJ_NAME_MAX
from ebpm.loader.session import ITERATOR_SECTIONS, Session
from ebpm.loader.tracelog import uses_printk
from ebpm.package import PackageConfig

__all__ = ["LINK_PREFIX", "MAP_PREFIX", "pin_session", "adopt_session", "remove_pins",
           "pinned_links"]

LINK_PREFIX = "link-"
MAP_PREFIX = "map-"


def pin_session(session: Session, directory: Path) -> list[str]:
    """Pin `session`'s links and maps under `directory` (in bpffs; created if missing);
    returns the pin names. On failure nothing stays pinned."""
    directory.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []
    try:
        for link in session.obj.links:
            program = link.description.split(" -> ")[0]
            path = directory / f"{LINK_PREFIX}{program}"
            link.pin(str(path))
            done.append(path)
        for m in session.obj.maps:
            if m.internal:
                continue
            path = directory / f"{MAP_PREFIX}{m.name}"
            m.pin(str(path))
            done.append(path)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return [p.name for p in done]


def pinned_links(directory: Path) -> list[str]:
    """Names of the programs whose links are pinned in `directory`."""
    if not directory.is_dir():
        return []
    return sorted(p.name[len(LINK_PREFIX):] for p in directory.iterdir()
                  if p.name.startswith(LINK_PREFIX))


def adopt_session(
    obj_bytes: bytes, config: PackageConfig, directory: Path, *,
    sidecar_btf: bytes | None = None, attached: Sequence[str] = (),
) -> Session:
    """A session over programs pinned in `directory` by `pin_session` (of this same object):
    nothing is loaded or attached again."""
    if not pinned_links(directory):
        raise LoadError(f"{directory}: no pinned links (nothing is attached there)",
                        hint="the pins were removed; start the program again")
    obj = libbpf.BpfObject.open_memory(obj_bytes, name=config.name[:OBJ_NAME_MAX])
    try:
        for m in obj.maps:
            path = directory / f"{MAP_PREFIX}{m.name}"
            if m.internal or not path.exists():
                continue
            fd = libbpf.obj_get(str(path))
            try:
                m.reuse_fd(fd)
            finally:
                os.close(fd)
        btf = Btf.parse(obj_bytes)
        sidecar = Btf.parse(sidecar_btf) if sidecar_btf else None
        session = Session(obj, config, btf, sidecar, [], list(attached),
                          printk=uses_printk(obj_bytes))
    except BaseException:
        obj.close()
        raise
    try:  # its iterator programs, to run anew through their pinned links
        session.iterators = _pinned_iterators(obj, directory)
    except BaseException:
        session.close()
        raise
    return session


def _pinned_iterators(obj: libbpf.BpfObject, directory: Path) -> tuple[tuple[str, Link], ...]:
    """The iterator programs pinned in `directory`, each with its link opened from its pin."""
    opened: list[tuple[str, Link]] = []
    try:
        for prog in obj.programs:
            path = directory / f"{LINK_PREFIX}{prog.name}"
            if prog.section.startswith(ITERATOR_SECTIONS) and path.exists():
                opened.append((prog.name, open_pinned(str(path),
                                                      f"{prog.name} -> {prog.section}")))
    except BaseException:
        for _, link in opened:
            link.destroy()
        raise
    return tuple(opened)


def remove_pins(directory: Path) -> None:
    """Delete every pin in `directory` and the directory itself."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        path.unlink(missing_ok=True)
    directory.rmdir()
