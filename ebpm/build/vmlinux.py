"""vmlinux.h: all kernel types as C, generated from the running kernel's BTF and cached."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ebpm import config
from ebpm.build.toolchain import find_tool, run_tool
from ebpm.errors import BuildError, MissingFeatureError
from ebpm.files import atomic_path

__all__ = ["KERNEL_BTF", "ENV_VAR", "vmlinux_header"]

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")
ENV_VAR = "EBPM_VMLINUX_H"  # a vmlinux.h to use instead of generating one


def vmlinux_header(
    *, btf_path: Path = KERNEL_BTF, cache_dir: Path | None = None
) -> Path:
    """The cached `vmlinux.h` for `btf_path`, generated with bpftool on first use.

    The cache is keyed by the BTF's sha256: `$EBPM_HOME/vmlinux/<sha256>/vmlinux.h`.
    """
    try:
        btf = btf_path.read_bytes()
    except FileNotFoundError as err:
        raise MissingFeatureError(
            "BTF", detail=f"{btf_path} does not exist",
            hint=f"use a kernel built with CONFIG_DEBUG_INFO_BTF=y, or name a vmlinux.h with "
            f"--vmlinux or ${ENV_VAR}",
        ) from err
    except OSError as err:
        raise BuildError(f"{btf_path}: {err.strerror}") from err
    digest = hashlib.sha256(btf).hexdigest()
    target = (cache_dir or Path(config.store_home(), "vmlinux")) / digest / "vmlinux.h"
    if target.is_file():
        return target
    bpftool = find_tool("bpftool")
    with atomic_path(target) as tmp:
        run_tool(
            [bpftool, "btf", "dump", "file", str(btf_path), "format", "c"],
            what=f"generate vmlinux.h from {btf_path}",
            stdout_path=tmp,
        )
    return target
