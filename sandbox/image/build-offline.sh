#!/usr/bin/env bash
# Build the sandbox image without any container registry (CI, air-gapped hosts), as root:
# debootstrap Debian bookworm with Python and the scientific packages from the Debian mirror apt
# already uses, `docker import` it as a local base image, then `docker build` the runner layer
# (Dockerfile.offline) on top of it. Usage: build-offline.sh [tag]   (default assistd-sandbox:1)
set -euo pipefail
IMAGE=${1:-assistd-sandbox:1}
BASE=${ASSISTD_SANDBOX_BASE:-assistd-sandbox-base:bookworm}
HERE=$(cd "$(dirname "$0")" && pwd)

mirror() {  # the first Debian mirror in apt's sources (deb822 or one-line format)
  local m
  m=$(awk '$1 == "URIs:" && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  echo "${m:-http://deb.debian.org/debian}"
}

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  ROOT=$(mktemp -d /tmp/assistd-rootfs.XXXXXX)
  trap 'rm -rf "$ROOT"' EXIT
  debootstrap --variant=minbase \
    --include=python3,python3-numpy,python3-pandas,python3-matplotlib,python3-scipy,python3-sympy,fonts-dejavu-core \
    bookworm "$ROOT" "$(mirror)" >/tmp/assistd-debootstrap.log 2>&1 ||
    { tail -n 30 /tmp/assistd-debootstrap.log >&2; exit 1; }
  # python3-scipy depends on pythran, which pulls in g++ and headers: not needed to run, ~300 MB
  rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
    "$ROOT"/usr/share/doc "$ROOT"/usr/share/man "$ROOT"/usr/share/locale \
    "$ROOT"/usr/include "$ROOT"/usr/lib/gcc "$ROOT"/usr/libexec/gcc "$ROOT"/usr/bin/*-linux-gnu-* \
    "$ROOT"/usr/bin/{cpp,gcc,g++,c++,cc,c89,c99}* "$ROOT"/usr/lib/x86_64-linux-gnu/lib{asan,tsan,lsan,ubsan,hwasan}*
  tar -C "$ROOT" --numeric-owner -c . | docker import - "$BASE" >/dev/null
fi

# the legacy builder works with any engine; RUN steps need no network (dockerd may run without a bridge).
# The label lets .ci/docker.sh rebuild this layer (seconds) when the runner changes.
if ! out=$(DOCKER_BUILDKIT=0 docker build -q --network=none --build-arg "BASE=$BASE" --label "assistd.runner=$(bash "$HERE/runner-hash.sh")" \
  -f "$HERE/Dockerfile.offline" -t "$IMAGE" "$HERE" 2>&1); then
  echo "$out" >&2
  exit 1
fi
echo "built $IMAGE"
