#!/usr/bin/env bash
# PgBouncer on 127.0.0.1:6432 in transaction pooling mode, in front of the PostgreSQL on
# 127.0.0.1:5432 (called by .ci/services.sh as root, once the assistd role exists). Any database
# name is passed through, so the tests' fresh databases need no entry. Idempotent: installs the
# Debian package only if missing, starts PgBouncer only if 6432 does not answer.
set -euo pipefail

DIR=/tmp/assistd-pgbouncer
URL=postgresql://assistd:assistd@127.0.0.1:6432/assistd

if [ ! -x /usr/sbin/pgbouncer ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
  # the package's own service (where systemd starts it) would hold 6432 with no database in it
  systemctl disable --now pgbouncer >/dev/null 2>&1 || true
fi

if psql "$URL" -tAc "SELECT 1" >/dev/null 2>&1; then
  exit 0
fi
mkdir -p "$DIR"
# a plain password here lets PgBouncer answer SCRAM itself and log in to PostgreSQL as assistd
echo '"assistd" "assistd"' >"$DIR/userlist.txt"
# max_prepared_statements is left at 0 (1.18 has no such setting): protocol-level prepared
# statements do not survive a transaction here, which is what the tests need to catch.
# ignore_startup_parameters: asyncpg and psycopg send these, PgBouncer refuses unknown ones.
cat >"$DIR/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $DIR/userlist.txt
admin_users = assistd
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
INI
chown -R postgres:postgres "$DIR"
chmod 600 "$DIR/userlist.txt"
rm -f "$DIR/pgbouncer.pid"  # left by one that died: PgBouncer would refuse to start
su postgres -s /bin/sh -c "ulimit -n 4096 2>/dev/null; /usr/sbin/pgbouncer -d $DIR/pgbouncer.ini"
for _ in $(seq 50); do psql "$URL" -tAc "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
psql "$URL" -tAc "SELECT 1" >/dev/null || { echo "pgbouncer did not start; see $DIR/pgbouncer.log" >&2; exit 1; }
