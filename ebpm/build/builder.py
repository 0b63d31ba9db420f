"""`ebpm build`: compile a package directory into `.ebpm/` (object, config.json, BTF sidecar)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ebpm import __version__, loadtime
from ebpm.arches import TARGET_ARCHES, target_arch_of
from ebpm.build.metadata import CONVENTIONAL_EVENT, extract
from ebpm.build.sidecar import build_sidecar, source_includes
from ebpm.build.toolchain import (
    bpf_cflags,
    bpf_target,
    clang_version,
    compile_bpf,
    find_tool,
    run_tool,
    target_arch,
)
from ebpm.build.vmlinux import ENV_VAR, vmlinux_header
from ebpm.errors import BuildError, CompileError, ManifestError
from ebpm.files import atomic_write
from ebpm.loader.btf import Btf
from ebpm.loader.elf import ElfFile
from ebpm.package import CONFIG_FILE, PackageConfig, ProjectManifest, expect

__all__ = ["BuildResult", "build"]

_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
_BUILD_KEYS = {"source", "vmlinux", "cflags", "wasm", "arch", "groups"}


@dataclass(frozen=True)
class BuildResult:
    """What `build()` wrote into DIR/.ebpm/."""

    config: PackageConfig
    object_path: Path
    btf_path: Path | None = None
    wasm_path: Path | None = None

    @property
    def config_path(self) -> Path:
        return self.object_path.parent / CONFIG_FILE


def _vmlinux(manifest: ProjectManifest, given: str | Path | None) -> Path:
    named = given or manifest.build.get("vmlinux") or os.environ.get(ENV_VAR)
    if not named:
        return vmlinux_header()
    path = Path(named)
    if not path.is_absolute() and not given:
        path = manifest.root / path
    if not path.is_file():
        raise BuildError(f"vmlinux.h: {path} does not exist",
                         hint=f"name an existing file, or unset ${ENV_VAR} to generate one")
    return path.resolve()


def _predicted_event_types(manifest: ProjectManifest, header_texts: list[str]) -> list[str]:
    """The event types a build will probably need in a sidecar (before compiling)."""
    if manifest.events:
        names = {re.sub(r"^\s*(struct|union|enum)\s+", "", str(t)).strip()
                 for t in manifest.events.values()}
        return sorted(n for n in names if n)
    pattern = re.compile(r"\bstruct\s+" + CONVENTIONAL_EVENT + r"\s*\{")
    return [CONVENTIONAL_EVENT] if any(pattern.search(t) for t in header_texts) else []


def _object_btf(obj: bytes) -> Btf:
    elf = ElfFile(obj, error=BuildError)
    section = elf.section(".BTF")
    if section is None:  # extract() has already refused such an object
        raise BuildError("object: has no .BTF section")
    return Btf.parse(elf.section_data(section), where="object .BTF", error=BuildError)


def _local_headers(source: Path, text: str) -> list[Path]:
    """The project's own headers: `#include "x.h"` found beside the source (not vmlinux.h)."""
    out = []
    for name in _LOCAL_INCLUDE.findall(text):
        path = source.parent / name
        if Path(name).name != "vmlinux.h" and path.is_file():
            out.append(path)
    return out


def build(
    directory: str | Path,
    *,
    vmlinux_h: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Compile DIR/NAME.bpf.c and write DIR/.ebpm/{NAME.bpf.o, config.json[, NAME.btf]}.

    `vmlinux_h` names a vmlinux.h to compile against; else `[build] vmlinux` in ebpm.toml,
    else $EBPM_VMLINUX_H, else one generated (and cached) from /sys/kernel/btf/vmlinux.
    `progress` receives one line per step.
    """
    say = progress or (lambda _line: None)
    root = Path(directory).resolve()
    manifest = ProjectManifest.load(root)
    from ebpm.config import default_registry
    from ebpm.resolver.validate import check_publishable

    # a dependency table consumers could not read is refused before anything is compiled
    check_publishable(manifest.dependencies, registry=default_registry(),
                      where=str(root / "ebpm.toml"), allow_path=True)
    _check_build_table(manifest)
    manifest.readme_file()  # a README it names but lacks is refused before anything is compiled
    source = root / str(manifest.build.get("source") or f"{manifest.name}.bpf.c")
    if not source.is_file():
        raise BuildError(f"build {manifest.name}: source {source.name} not found in {root}",
                         hint="name it NAME.bpf.c or set [build] source in ebpm.toml")
    cflags = manifest.build.get("cflags", [])

    clang = find_tool("clang")
    strip = find_tool("llvm-strip")
    arch = str(manifest.build.get("arch") or target_arch())
    header = _vmlinux(manifest, vmlinux_h)
    out_dir = manifest.build_dir
    out_dir.mkdir(exist_ok=True)
    source_text = source.read_text(errors="replace")
    headers = _local_headers(source, source_text)
    builder = f"ebpm {__version__}; clang {clang_version(clang)}"

    with tempfile.TemporaryDirectory(prefix="ebpm-build-") as tmp_name:
        tmp = Path(tmp_name)
        include = tmp / "include"
        include.mkdir()
        shutil.copyfile(header, include / "vmlinux.h")
        flags = [
            *bpf_cflags(arch),
            f"-I{include}",
            # absolute paths would make the bytes depend on where the package was built
            f"-fdebug-prefix-map={root}=.",
            f"-fdebug-prefix-map={tmp}=/ebpm",
            "-fno-ident",
            *cflags,
        ]
        say(f"compile {source.name} (clang -target {bpf_target(arch)}, __TARGET_ARCH_{arch})")
        header_texts = [h.read_text(errors="replace") for h in headers]
        sidecar_flags = [*bpf_cflags(arch), f"-I{include}", f"-I{root}", *cflags]
        includes = source_includes(source_text)
        # The sidecar is usually needed (event structs are rarely in the object's BTF): compile
        # it beside the object, for the types the manifest or the convention names.
        predicted = _predicted_event_types(manifest, header_texts)
        pool = ThreadPoolExecutor(max_workers=1)
        early: Future[bytes] | None = None
        if predicted:
            early = pool.submit(build_sidecar, predicted, headers, clang=clang,
                                flags=sidecar_flags, includes=includes)
        full = tmp / "full.o"
        try:
            # relative to the package, as `[build] source = "../a/a.bpf.c"` is written, also
            # when ebpm.toml names it by an absolute path: the same bytes either way
            compile_bpf(clang, Path(os.path.relpath(source, root)), full, cwd=root,
                        flags=flags)
        finally:
            pool.shutdown(wait=True)
        obj_path = out_dir / f"{manifest.name}.bpf.o"
        stripped = tmp / "stripped.o"
        run_tool([strip, "-g", str(full), "-o", str(stripped)], what="strip DWARF")
        obj = stripped.read_bytes()
        atomic_write(obj_path, obj)

        config = extract(
            obj,
            manifest=manifest,
            source_text=source_text,
            header_texts=header_texts,
            arch=(arch,),  # what it was compiled for (__TARGET_ARCH_), not this machine
            builder=builder,
        )
        own = _object_btf(obj)
        lacking = sorted({e.type for e in config.events if not own.has_type(e.type)})
        btf_path: Path | None = out_dir / f"{manifest.name}.btf"
        if lacking and btf_path is not None:
            say(f"BTF sidecar for {', '.join(lacking)}")
            try:
                if early is not None and set(lacking) <= set(predicted) and not early.exception():
                    sidecar = early.result()
                else:
                    sidecar = build_sidecar(lacking, headers, clang=clang, flags=sidecar_flags,
                                            includes=includes)
            except CompileError as err:
                where = ", ".join(h.name for h in headers) or "a local header"
                defined = [t for t in lacking if any(
                    re.search(rf"\b(struct|union|enum)\s+{re.escape(t)}\s*\{{", text)
                    for text in header_texts)]
                if defined:
                    raise BuildError(
                        f"BTF sidecar for {', '.join(lacking)}: the headers ({where}) do not "
                        "compile on their own: " + "; ".join(err.diagnostics[:3]),
                        hint="add what they need to ebpm.toml [build] cflags (-D..., -I...)",
                    ) from err
                raise BuildError(
                    f"event type {', '.join(lacking)}: not in the object's BTF and not "
                    f"defined in {where}: " + "; ".join(err.diagnostics[:3]),
                    hint="define the struct in NAME.h, or name the type in ebpm.toml [events]",
                ) from err
            atomic_write(btf_path, sidecar)
        elif btf_path is not None:
            btf_path.unlink(missing_ok=True)
            btf_path = None

    if manifest.build.get("wasm") or (source.parent / "app.c").is_file():
        say("compile the wasm userspace (wasm32-wasi)")
    wasm_path = _wasm(manifest, source, obj_path)
    config_path = out_dir / CONFIG_FILE
    # what a run needs of the config, as text (`ebpm run DIR` reads it, not config.json: no
    # json import on its way to the first event; ebpm.loadtime), recording the config.json
    # written next: a build cut short between the two leaves them disagreeing, which a run
    # refuses (`ebpm build` again)
    config_json = config.to_json()
    text = loadtime.render(config, config_json)
    if text is None:
        (out_dir / loadtime.FILE).unlink(missing_ok=True)
    else:
        atomic_write(out_dir / loadtime.FILE, text.encode("ascii"))
    atomic_write(config_path, config_json)
    return BuildResult(config, obj_path, btf_path, wasm_path)


def _check_build_table(manifest: ProjectManifest) -> None:
    """ebpm.toml's [build]: known keys of the types docs/authoring.md gives (the group names
    are checked against the object's programs by `group_programs`)."""
    where = f"{manifest.file}: [build]"
    unknown = sorted(set(manifest.build) - _BUILD_KEYS)
    if unknown:
        raise ManifestError(
            f"{where}: unknown key(s) {', '.join(unknown)}",
            hint=f"known: {', '.join(sorted(_BUILD_KEYS))}",
        )
    for key, value in manifest.build.items():
        kind = {"cflags": "list of strings", "groups": "table"}.get(key, "string")
        expect(value, kind, f"{where} {key}")
    arch = manifest.build.get("arch")
    if arch is not None and arch not in TARGET_ARCHES:
        named = target_arch_of(arch)  # a machine name (x86_64) for the arch
        raise ManifestError(f"{where} arch: {arch!r} is not an architecture libbpf knows",
                            hint=f'write "{named}", libbpf\'s name for {arch}' if named else
                            f"one of {', '.join(TARGET_ARCHES)}")


def _wasm(manifest: ProjectManifest, source: Path, obj_path: Path) -> Path | None:
    """The package's WebAssembly userspace, `.ebpm/NAME.wasm`, when it has one.

    `[build] wasm` names a prebuilt `.wasm` to ship or the guest's C source; without it an
    `app.c` beside the BPF source is the guest. C guests are built by the wasm room's
    `build_guest` (bpftool skeleton + clang --target=wasm32-wasi against ebpm's guest SDK).
    """
    target = obj_path.parent / f"{manifest.name}.wasm"
    named = manifest.build.get("wasm")
    if named:
        path = manifest.root / str(named)
        if not path.is_file():
            raise BuildError(f"[build] wasm: {path} not found")
    elif (source.parent / "app.c").is_file():
        path = source.parent / "app.c"
    else:
        target.unlink(missing_ok=True)
        return None
    if path.suffix == ".wasm":
        atomic_write(target, path.read_bytes())
        return target
    from ebpm.build.guest import build_guest

    return build_guest(source.parent, obj_path, output=target, sources=[path])
