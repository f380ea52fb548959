#!/usr/bin/env bash
# The Docker engine and the sandbox image for the code interpreter (called by .ci/services.sh as
# root on a bare Debian machine). Idempotent: installs only what is missing, starts dockerd only
# if it does not answer, builds the image only if absent (offline: debootstrap + docker import).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${ASSISTD_SANDBOX_IMAGE:-assistd-sandbox:1}

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  # no bridge, no iptables: sandbox containers run with network_mode=none anyway
  nohup dockerd --bridge=none --iptables=false >/tmp/assistd-dockerd.log 2>&1 &
  for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/assistd-dockerd.log" >&2; exit 1; }
fi

# absent, or built from another runner.py / Dockerfile.offline: (re)build (the base is kept)
built=$(docker image inspect -f '{{index .Config.Labels "assistd.runner"}}' "$IMAGE" 2>/dev/null || true)
if [ "$built" != "$(bash sandbox/image/runner-hash.sh)" ]; then
  bash sandbox/image/build-offline.sh "$IMAGE"
fi
echo "services: docker engine ready, image $IMAGE present"
