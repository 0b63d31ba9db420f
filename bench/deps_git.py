"""Git dependencies at scale: `ebpm lock` of a 200-package graph with 20 git dependencies, cold
(empty store: every repository fetched, every git package built) and warm (lock deleted, store
kept: no fetch of a known commit, no rebuild); then `ebpm install --frozen` from that lock with
everything cached, against the same install of a 200-package graph without git dependencies.

The registry graph: packages in a layered DAG (each depends on up to 3 of the next), published
unsigned to a loopback registry. Each git dependency is a real package (`ebpm init`) in its own
bare repository served by `git daemon` on loopback, depending on one registry package.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import EBPM, ROOT, alternate, ratio_line, run_quiet, timed

ROUNDS = 3
N_REGISTRY = 180
N_GIT = 20


def _publish(host: str, prefix: str, n: int) -> None:
    from ebpm.access import registry_for
    from ebpm.oci.artifact import Layer, pack
    from ebpm.oci.model import BPF_OBJECT_TYPE, MANIFEST_V1
    from ebpm.package import PackageConfig

    client = registry_for(host)
    for i in range(n):
        deps = {f"{prefix}-{j}": "^1" for j in range(i + 1, min(i + 4, n))}
        config = PackageConfig(name=f"{prefix}-{i}", version="1.0.0", dependencies=deps)
        body = os.urandom(16 * 1024)
        art = pack(config.to_json(), [Layer(BPF_OBJECT_TYPE, "x.bpf.o", body)],
                   annotations={"org.opencontainers.image.version": "1.0.0"})
        for blob in art.blobs:
            client.push_blob(f"{prefix}-{i}", blob.descriptor.digest, blob.data)
        client.put_manifest(f"{prefix}-{i}", "1.0.0", art.manifest_bytes, MANIFEST_V1)


def _git_repos(work: Path, served: Path, prefix: str) -> list[str]:
    """N_GIT bare repositories, each holding one `ebpm init` package; returns their names."""
    from ebpm.build.scaffold import init_package
    from tests.gitserve import Work

    names = []
    for i in range(N_GIT):
        name = f"gtool{i}"
        repo = Work(work / f"work-{name}", served / f"{name}.git")
        init_package(name, directory=repo.dir / "pkg")
        toml = repo.dir / "pkg" / "ebpm.toml"
        toml.write_text(toml.read_text().replace(
            "[dependencies]\n", f'[dependencies]\n{prefix}-{i} = "^1"\n'))
        repo.commit({})
        names.append(name)
    return names


def _app(directory: Path, deps: dict[str, str]) -> Path:
    directory.mkdir(parents=True)
    lines = "".join(f"{k} = {v}\n" for k, v in deps.items())
    (directory / "ebpm.toml").write_text(
        f'[package]\nname = "app"\nversion = "0.1.0"\n\n[dependencies]\n{lines}')
    return directory


def main() -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.gitserve import GitDaemon
    from tests.registryd import start_registry

    work = Path(tempfile.mkdtemp(prefix="ebpm-bench-git-"))
    reg = start_registry(root=work / "registry")
    served = work / "served"
    served.mkdir()
    daemon = GitDaemon(served)
    try:
        _publish(reg.host, "bg", N_REGISTRY)
        _publish(reg.host, "bp", N_REGISTRY + N_GIT)  # the peer graph: registry only
        names = _git_repos(work, served, "bg")
        git_deps = {n: f'{{ git = "{daemon.url(n + ".git")}", branch = "main", '
                       f'subdir = "pkg" }}' for n in names}
        with_git = _app(work / "app-git", {"bg-0": '"^1"', **git_deps})
        without = _app(work / "app-plain", {"bp-0": '"^1"'})
        store = work / "home"
        env = dict(os.environ, EBPM_HOME=str(store), EBPM_CONFIG=str(work / "config"),
                   EBPM_REGISTRY=reg.host)

        def lock(app: Path) -> None:
            run_quiet([EBPM, "lock", "-C", str(app), "--allow-unsigned"], env=env)

        cold = timed(lambda: lock(with_git))
        warm = []
        for _ in range(ROUNDS):
            (with_git / "ebpm.lock").unlink()
            warm.append(timed(lambda: lock(with_git)))
        lock(without)
        lines = [ratio_line(f"lock of {N_REGISTRY + N_GIT} packages with {N_GIT} git deps, "
                            "warm store vs cold (fetch + build)", warm, [cold], "cold")]

        def install(app: Path) -> None:
            run_quiet([EBPM, "install", "--frozen", "--allow-unsigned", "-C", str(app)], env=env)

        ours, peer = alternate(lambda: install(with_git), lambda: install(without), ROUNDS + 2)
        lines.append(ratio_line(
            f"install --frozen, everything cached: {N_GIT} git + {N_REGISTRY} registry vs "
            f"{N_REGISTRY + N_GIT} registry packages (goal <= 1.2x)", ours, peer, "no git"))
        return lines
    finally:
        daemon.stop()
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print("\n".join(main()))
