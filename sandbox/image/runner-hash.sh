#!/usr/bin/env bash
# The identity of the runner layer: a hash of what build-offline.sh puts on top of the base.
set -euo pipefail
cd "$(dirname "$0")"
cat runner.py Dockerfile.offline | sha256sum | cut -c1-16
