#!/usr/bin/env bash
# The main job end to end on this machine: a local registry, build an example, sign, push,
# pull into an empty store, verify, inspect, and run it on the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

work=$(mktemp -d /tmp/ebpm-demo.XXXXXX)
export EBPM_HOME="$work/store" EBPM_CONFIG="$work/config" EBPM_DATA="$work/data"
port=${EBPM_DEMO_PORT:-$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
export EBPM_REGISTRY="127.0.0.1:$port"
cleanup() { ebpm registry down >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "start a local registry on $EBPM_REGISTRY"
ebpm registry up --port "$port"

step "build examples/opensnoop"
cp -r examples/opensnoop "$work/opensnoop"
ebpm build "$work/opensnoop"

step "generate a signing key and trust it for $EBPM_REGISTRY"
ebpm key generate --trust "$EBPM_REGISTRY/**"

step "push it (signed)"
ebpm push "$work/opensnoop" "$EBPM_REGISTRY/tools/opensnoop" --sign   # tag = its version
ebpm tags "$EBPM_REGISTRY/tools/opensnoop"

step "pull into an empty store and inspect"
rm -rf "$EBPM_HOME"
ebpm pull tools/opensnoop                 # the highest version
ebpm inspect --local tools/opensnoop
ebpm list
step "verify offline (signature and digests, from the store alone)"
ebpm --offline verify --fresh tools/opensnoop   # --fresh: check the signatures again, not the record

step "index the registry, search it offline, build the web catalog (docs/hub.md)"
ebpm hub refresh "$EBPM_REGISTRY"
ebpm --offline search opensnoop
ebpm hub build -o "$work/site"

step "run it offline for up to 2 seconds (real file opens on this machine)"
( sleep 0.5; cat /etc/hostname /etc/os-release >/dev/null ) &
ebpm --offline run tools/opensnoop --duration 2 --max-events 10
step "done"
