#!/usr/bin/env bash
# Install (only where missing) and start the services the tests talk to:
# Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432 (user/password assistd) and PgBouncer on
# 127.0.0.1:6432 in front of it (transaction pooling); Node.js and npm for the JavaScript SDK's test.
set -euo pipefail

need=()
# redis-server is Sentinel too (`redis-server conf --sentinel`): tests/sentinel.py starts its own
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v npm >/dev/null || need+=(nodejs npm)  # the JavaScript SDK's contract test
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no \
    --logfile /tmp/assistd-redis.log
fi

PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
PGDATA=${ASSISTD_PGDATA:-/tmp/assistd-pg}
if ! "$PGBIN/pg_isready" -h 127.0.0.1 -p 5432 -q; then
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA"
    su postgres -s /bin/sh -c "$PGBIN/initdb -D $PGDATA -U postgres -A trust -E UTF8 --no-locale" >/dev/null
  fi
  mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
  su postgres -s /bin/sh -c "$PGBIN/pg_ctl -D $PGDATA -l $PGDATA/server.log -w \
    -o '-c listen_addresses=127.0.0.1 -p 5432 -c max_connections=300 -c fsync=off' start" >/dev/null
fi
for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname='assistd'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -qc "CREATE ROLE assistd LOGIN SUPERUSER PASSWORD 'assistd'"
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='assistd'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE assistd OWNER assistd"
echo "services: redis 127.0.0.1:6379, postgresql 127.0.0.1:5432 ready"
bash .ci/pgbouncer.sh  # needs the assistd role above

# the Docker engine and sandbox image (code interpreter), the browser (playground tests), a real
# inference server (llama.cpp's, tests/contract/test_llama_server.py)
for extra in .ci/docker.sh .ci/browser.sh .ci/llama.sh; do
  if [ -f "$extra" ]; then bash "$extra"; fi
done
