"""`ebpm init`: write a new package directory from one of the templates."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ebpm.errors import UsageError
from ebpm.package import validate_name

__all__ = ["TEMPLATES", "DEFAULT_TEMPLATE", "Template", "init_package"]


@dataclass(frozen=True)
class Template:
    """A starting point: its one-line description and a longer note for the README."""

    name: str
    description: str
    about: str


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("tracepoint", "Print the files processes open (syscalls:sys_enter_openat).",
                 "A tracepoint program with pid, uid and command filters."),
        Template("kprobe", "Print the files processes delete (kprobe on do_unlinkat).",
                 "A kprobe program with a tracepoint fallback in the same group, for kernels "
                 "built without CONFIG_KPROBES."),
        Template("uprobe", "Print host name lookups and their latency (uprobe on getaddrinfo).",
                 "A uprobe/uretprobe pair on libc, joined through a hash map."),
        Template("ringbuf", "Print process starts and exits with their lifetimes.",
                 "libbpf-bootstrap's `bootstrap`: two tracepoints, a hash map, a ring buffer."),
        Template("hist", "A log2 histogram of each process's read() sizes, printed at exit.",
                 "A histogram kept in a hash map, sent through the ring buffer at process exit."),
    )
}
DEFAULT_TEMPLATE = "tracepoint"

# template file -> file written (NAME is the package name)
_FILES = {
    "NAME.bpf.c": "{name}.bpf.c",
    "NAME.h": "{name}.h",
    "ebpm.toml": "ebpm.toml",
    "README.md": "README.md",
    "gitignore": ".gitignore",
}


def _render(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def init_package(
    name: str, *, template: str = DEFAULT_TEMPLATE, directory: str | Path | None = None
) -> list[Path]:
    """Create `directory` (default ./NAME) holding a package made from `template`.

    Returns the files written. Refuses a directory that exists and is not empty.
    """
    validate_name(name)
    chosen = TEMPLATES.get(template)
    if chosen is None:
        raise UsageError(f"init: no template {template!r}",
                         hint="templates: " + ", ".join(TEMPLATES))
    target = Path(directory) if directory is not None else Path(name)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"init: {target} already exists and is not empty",
                         hint="choose another name, or remove it first")
    ident = re.sub(r"[^A-Za-z0-9]", "_", name)
    values = {
        "name": name,
        "ident": ident,
        "IDENT": ident.upper(),
        "template": template,
        "description": chosen.description,
        "about": chosen.about,
    }
    root = resources.files("ebpm.build") / "templates"
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for source, dest in _FILES.items():
        folder = root / template
        if not (folder / source).is_file():
            folder = root / "common"
        text = (folder / source).read_text()
        path = target / dest.format(name=name)
        path.write_text(_render(text, values))
        written.append(path)
    return written
