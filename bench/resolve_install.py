"""`ebpm install --frozen` of a 50-package lockfile from a loopback registry into an empty store,
against a shell loop of `skopeo copy` over the same 50 artifacts into an empty OCI layout.

The graph: 50 packages in a layered DAG (each depends on up to 3 of the next ones), published
unsigned; `ebpm lock` runs once, then both sides are timed alternately from empty stores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import EBPM, ROOT, alternate, ratio_line, run_quiet

ROUNDS = 3
N = 50


def _publish(host: str, n: int) -> list[str]:
    from ebpm.access import registry_for
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
    from ebpm.package import PackageConfig

    client = registry_for(host)
    refs = []
    for i in range(n):
        deps = {f"bench-dep-{j}": "^1" for j in range(i + 1, min(i + 4, n))}
        config = PackageConfig(name=f"bench-dep-{i}", version="1.0.0", dependencies=deps)
        body = os.urandom(16 * 1024)  # a 16 KiB object stand-in
        art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "x.bpf.o", body)],
                   annotations={"org.opencontainers.image.version": "1.0.0"})
        for blob in art.blobs:
            client.push_blob(f"bench-dep-{i}", blob.descriptor.digest, blob.data)
        client.put_manifest(f"bench-dep-{i}", "1.0.0", art.manifest_bytes, MANIFEST_V1)
        refs.append(f"{host}/bench-dep-{i}:1.0.0")
    return refs


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-install-"))
    reg = start_registry(root=work / "registry")
    try:
        refs = _publish(reg.host, N)
        app = work / "app"
        app.mkdir()
        (app / "ebpm.toml").write_text(
            '[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\nbench-dep-0 = "^1"\n'
        )
        store, layout = work / "home", work / "layout"
        env = dict(os.environ, EBPM_HOME=str(store), EBPM_CONFIG=str(work / "config"),
                   EBPM_REGISTRY=reg.host)
        run_quiet([EBPM, "lock", "-C", str(app), "--allow-unsigned"], env=env)
        script = "\n".join(
            f"skopeo copy --quiet --src-tls-verify=false docker://{r} oci:{layout}:{i}"
            for i, r in enumerate(refs)
        )

        def clean() -> None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(layout, ignore_errors=True)

        def ebpm() -> None:
            run_quiet([EBPM, "install", "--frozen", "--allow-unsigned", "-C", str(app)], env=env)

        def skopeo() -> None:
            subprocess.run(["sh", "-e", "-c", script], check=True, stdout=subprocess.DEVNULL)

        ours, peer = alternate(ebpm, skopeo, ROUNDS, setup=clean)
        return [ratio_line(f"install --frozen of {N} packages into an empty store vs a "
                           f"skopeo copy loop", ours, peer, "skopeo loop")]
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print("\n".join(main()))
