#!/bin/bash
# Bring up the test bed's own PostgreSQL cluster (not the machine's default one)
# for the PostgreSQL tracking-store tests. Run as root. Works from nothing and is
# idempotent: initialises the cluster once, starts it if it is not running,
# creates the researcher's role, and gives it a password that only the
# researcher's ~/.pgpass holds, as the user guide says researchers keep theirs.
# A second run changes nothing: the files are rewritten only when their content
# differs, and the password is set only when the researcher cannot log in with
# the one ~/.pgpass already holds. Other lines of ~/.pgpass are kept.
#
#   OOD_MLFLOW_PG_DIR   where the cluster lives (default /srv/ood-mlflow-tests/postgres)
#   OOD_MLFLOW_PG_PORT  its TCP port on 127.0.0.1 (default 15432)
#   start-postgres.sh [USER]   the researcher (default ood-alice); their role has the same name
set -Eeuo pipefail
trap 'echo "start-postgres: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

top=${OOD_MLFLOW_PG_DIR:-/srv/ood-mlflow-tests/postgres}
port=${OOD_MLFLOW_PG_PORT:-15432}
researcher=${1:-ood-alice}
data=$top/data
socket=$top/socket

log() { echo "start-postgres: $*"; }
die() { echo "start-postgres: ERROR: $*" >&2; exit 1; }
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
psql_admin() { as_postgres "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$socket" -p "$port" -d postgres "$@"; }
# Writes stdin to file $1 (owned by postgres) only when the content differs.
write_if_changed() {
  local new
  new=$(cat)
  if [[ ! -f $1 ]] || [[ $(cat "$1") != "$new" ]]; then
    printf '%s\n' "$new" > "$1"
    chown postgres:postgres "$1"
    changed=1
  fi
}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
[[ -x $bin/initdb ]] || die "no PostgreSQL server under /usr/lib/postgresql: run .ci/install-deps.sh"
id -u postgres >/dev/null 2>&1 || die "no postgres user: reinstall Debian's postgresql package"
home=$(getent passwd "$researcher" | cut -d: -f6 || true)
[[ -n $home && -d $home ]] || die "no user $researcher with a home: run devportal/services/create-users.sh $researcher"

install -d -m 0755 "$(dirname "$top")"
install -d -o postgres -g postgres -m 0755 "$top" "$socket"  # everyone may reach the socket; the data stays 0700

if [[ ! -s $data/PG_VERSION ]]; then
  log "initialising a cluster in $data"
  install -d -o postgres -g postgres -m 0700 "$data"
  as_postgres "$bin/initdb" -D "$data" -U postgres --auth-local=peer --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C >/dev/null
fi
# Loopback TCP only, with passwords (scram), as a site's database service asks for them.
changed=0
write_if_changed "$data/postgresql.auto.conf" <<EOC
# Written by devportal/services/start-postgres.sh -- test cluster only.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$socket'
password_encryption = 'scram-sha-256'
max_connections = 200
EOC
write_if_changed "$data/pg_hba.conf" <<EOC
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOC

if as_postgres "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  if [[ $changed == 1 ]]; then
    as_postgres "$bin/pg_ctl" -D "$data" reload >/dev/null
    log "running on 127.0.0.1:$port (configuration reloaded)"
  else
    log "running on 127.0.0.1:$port"
  fi
else
  rm -f "$data/postmaster.pid"  # left by a machine that was switched off
  as_postgres "$bin/pg_ctl" -D "$data" -l "$top/server.log" -w -t 60 start >/dev/null \
    || die "the cluster in $data did not start; its log: $top/server.log"
  log "started on 127.0.0.1:$port"
fi

# The researcher logs in as a researcher would: psql as that user, password from ~/.pgpass.
can_log_in() {
  (cd / && runuser -u "$researcher" -- "$bin/psql" -X -w -q -At -h 127.0.0.1 -p "$port" -d postgres \
    -c 'SELECT 1') >/dev/null 2>&1
}

pgpass=$home/.pgpass
line_re="^127\\.0\\.0\\.1:$port:\\*:$researcher:"
if can_log_in; then
  log "role $researcher: logs in with the password in $pgpass"
  exit 0
fi
# ~/.pgpass may be missing (a new machine), empty, or hold other lines: none of that is an error.
password=
if [[ -f $pgpass ]]; then
  password=$(sed -n "s/${line_re}\\([0-9a-f]\\{64\\}\\)\$/\\1/p" "$pgpass" | head -n 1)
fi
[[ -n $password ]] || password=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# Given on stdin, not on psql's command line, where every user's ps would see it.
psql_admin <<EOC
\\set role '$researcher'
\\set password '$password'
SELECT format('CREATE ROLE %I LOGIN', :'role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')
\gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'role', :'password')
\gexec
EOC
# Keep the researcher's other lines; replace only this cluster's line for this role.
others=
if [[ -f $pgpass ]]; then others=$(grep -v "$line_re" "$pgpass" || true); fi
(
  umask 077
  { [[ -z $others ]] || printf '%s\n' "$others"; printf '127.0.0.1:%s:*:%s:%s\n' "$port" "$researcher" "$password"; } \
    > "$pgpass.new"
)
chown "$researcher:" "$pgpass.new"
mv -f "$pgpass.new" "$pgpass"
can_log_in || die "role $researcher cannot log in to 127.0.0.1:$port with $pgpass; the server's log: $top/server.log"
log "role $researcher: password set, in $pgpass"
