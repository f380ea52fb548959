#!/usr/bin/env bash
# The browser for the playground tests: Debian's Chromium (installed only when missing) and
# playwright-core, the npm package that drives it (tests/playground/node_modules, from the lock file).
# Never `playwright install`: it downloads a browser build of its own, which cannot be fetched here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
fi

lock=tests/playground/package-lock.json
stamp=tests/playground/node_modules/.lock-copy
if ! cmp -s "$lock" "$stamp"; then
  (cd tests/playground && npm ci --no-audit --no-fund --loglevel=error)
  cp "$lock" "$stamp"
fi
echo "browser: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p \
  "require('./tests/playground/node_modules/playwright-core/package.json').version")"
