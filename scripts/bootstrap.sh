#!/usr/bin/env bash
# Install everything ebpm's demo, tests and benchmarks need, idempotently:
# Debian packages (when missing) and a .venv with ebpm and its dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  docker-registry skopeo apache2-utils          # the registry and the interop oracle
  clang llvm bpftool libbpf1 libbpf-dev          # the eBPF toolchain
  libbpf-tools                                   # C peers for the benchmarks
  wasi-libc lld-14 libclang-rt-14-dev-wasm32     # wasm guests
  chromium chromium-driver                       # the hub's browser tests (headless)
  xxd
  python3-venv                                   # the venv, from Debian's own Python (below)
  time                                           # /usr/bin/time: peak RSS in bench/pull.py
  git                                            # git dependencies (git daemon, http-backend)
)

missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's own Python 3, as a Debian user's `pipx install ebpm` (apt's pipx) takes it: built
# with profile-guided and link-time optimisation, it starts and imports ~15% faster than a
# CPython built from source without them (pyenv's default build, first on PATH on some
# machines). PYTHON=... chooses another (docs/architecture.md, "Rules").
PY=${PYTHON:-$( [ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3 )}
stamp=.venv/.ebpm-installed
want=$("$PY" -c 'import sys; print(sys.base_prefix)')
if [ -x .venv/bin/python ] && [ "$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')" != "$want" ]; then
  echo "bootstrap: .venv was made from another Python than $PY: making it again"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv ($("$PY" -V) from $want)"
  "$PY" -m venv .venv
fi
# The venv as `pipx install` lays one out (its own current pip, no setuptools): a current pip
# writes the `ebpm` console script without `import re` (pip 23's does it before ebpm's first
# line, where a Ctrl-C also escapes ebpm), and without setuptools no distutils-precedence.pth
# imports _distutils_hack at every start. ebpm builds with setuptools in pip's isolated build
# environment (pyproject.toml), not this one.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/bootstrap.sh -nt "$stamp" ]; then
  echo "bootstrap: installing ebpm into .venv"
  if ! { .venv/bin/python -m pip install -q --upgrade 'pip>=25' &&
         .venv/bin/python -m pip uninstall -q -y setuptools &&
         .venv/bin/python -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
       } >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2; echo "bootstrap: pip install failed (log above)" >&2; exit 1
  fi
  touch "$stamp"
fi

# tracefs: libbpf resolves tracepoint ids through it (needs root).
if [ "$(id -u)" -eq 0 ] && [ -d /sys/kernel/tracing ] && ! mountpoint -q /sys/kernel/tracing; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
