#!/bin/bash
# Bring up the test bed's own PostgreSQL cluster (not the machine's default one)
# for the PostgreSQL tracking-store tests. Run as root. Idempotent: initialises
# the cluster once, starts it if it is not running, and (re)sets the researcher's
# role and password, which it writes to that user's ~/.pgpass as the user guide
# says researchers do.
#
#   OOD_MLFLOW_PG_DIR   where the cluster lives (default /srv/ood-mlflow-tests/postgres)
#   OOD_MLFLOW_PG_PORT  its TCP port on 127.0.0.1 (default 15432)
#   start-postgres.sh [USER]   the researcher (default ood-alice); their role has the same name
set -euo pipefail

top=${OOD_MLFLOW_PG_DIR:-/srv/ood-mlflow-tests/postgres}
port=${OOD_MLFLOW_PG_PORT:-15432}
researcher=${1:-ood-alice}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=$top/data
socket=$top/socket

log() { echo "start-postgres: $*"; }
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
psql_admin() { as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -d postgres "$@"; }

install -d -m 0755 "$(dirname "$top")"
install -d -o postgres -g postgres -m 0700 "$top" "$socket"
chmod 0755 "$top" "$socket"  # everyone may reach the socket directory; the data stays 0700

if [[ ! -s $data/PG_VERSION ]]; then
  log "initialising a cluster in $data"
  install -d -o postgres -g postgres -m 0700 "$data"
  as_postgres "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C >/dev/null
fi
# Loopback TCP only, with passwords (scram), as a site's database service asks for them.
cat > "$data/postgresql.auto.conf" <<EOF
# Written by devportal/services/start-postgres.sh -- test cluster only.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket'
password_encryption = 'scram-sha-256'
max_connections = 200
EOF
cat > "$data/pg_hba.conf" <<EOF
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOF
chown postgres:postgres "$data/postgresql.auto.conf" "$data/pg_hba.conf"

if as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  as_postgres "$bin/pg_ctl" -D "$data" reload >/dev/null
  log "running on 127.0.0.1:$port (reloaded)"
else
  rm -f "$data/postmaster.pid"  # left by a machine that was switched off
  as_postgres "$bin/pg_ctl" -D "$data" -l "$top/server.log" -w -t 60 start >/dev/null
  log "started on 127.0.0.1:$port"
fi

# The researcher's role, with a password that only their ~/.pgpass holds (made once,
# so a second run does not change it under sessions that are starting).
home=$(getent passwd "$researcher" | cut -d: -f6)
password=$(sed -n "s/^127\.0\.0\.1:$port:\*:$researcher:\([0-9a-f]\{64\}\)\$/\1/p" "$home/.pgpass" 2>/dev/null | head -n 1)
[[ -n $password ]] || password=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Given on stdin, not on psql's command line, where every user's ps would see it.
psql_admin <<EOF
\\set role '$researcher'
\\set password '$password'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password')
\gexec
EOF
( umask 077 && printf '127.0.0.1:%s:*:%s:%s\n' "$port" "$researcher" "$password" > "$home/.pgpass" )
chown "$researcher:" "$home/.pgpass"
log "role $researcher: password in $home/.pgpass"
