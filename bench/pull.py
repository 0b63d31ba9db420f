"""`ebpm pull` of a small package from a loopback registry into an empty store, against
`skopeo copy` of the same artifact into an empty OCI layout; alternated, medians and ratio."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import EBPM, ROOT, alternate, ratio_line, run_quiet

ROUNDS = 15
SOURCE = r"""
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("tracepoint/syscalls/sys_enter_openat")
int handle(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-pull-"))
    reg = start_registry(root=work / "registry")
    try:
        src = work / "hello.bpf.c"
        src.write_text(SOURCE)
        obj = work / "hello.bpf.o"
        multiarch = f"/usr/include/{os.uname().machine}-linux-gnu"
        subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I", multiarch, "-c", str(src),
                        "-o", str(obj)], check=True)
        env = dict(os.environ, EBPM_HOME=str(work / "home"), EBPM_CONFIG=str(work / "config"))
        ref = f"{reg.host}/bench/hello:1.0.0"
        run_quiet([EBPM, "push", str(obj), ref], env=env)
        store, layout = work / "home", work / "layout"

        def clean() -> None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(layout, ignore_errors=True)

        def ebpm() -> None:
            run_quiet([EBPM, "pull", "--allow-unsigned", ref], env=env)

        def skopeo() -> None:
            run_quiet(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                       f"docker://{ref}", f"oci:{layout}:hello"])

        clean()
        ebpm()
        clean()
        skopeo()
        ours, peer = alternate(ebpm, skopeo, ROUNDS, setup=clean)
        return [ratio_line("pull small package into an empty store vs skopeo copy",
                           ours, peer, "skopeo")]
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
