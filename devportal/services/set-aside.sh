#!/bin/bash
# Make this machine look brand-new to the test bed, to reproduce a new machine's
# `sudo bin/test` (docs/development.md, "A new machine, here"). Run as root.
# Stops the daemons the test bed started, by their pid files, and moves every
# file the test bed made outside the clone into one folder (nothing is deleted
# but the test users, whose homes are moved too). Debian packages stay.
#
#   set-aside.sh [FOLDER]   default /var/tmp/ood-mlflow-aside-<date>
set -Eeuo pipefail
trap 'echo "set-aside: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

aside=${1:-/var/tmp/ood-mlflow-aside-$(date +%Y%m%d-%H%M%S)}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pg_dir=${OOD_MLFLOW_PG_DIR:-/srv/ood-mlflow-tests/postgres}
install -d -m 0700 "$aside"

# The test PostgreSQL cluster, then Slurm and munge (stop-slurm.sh: by their pid files).
if [[ -s $pg_dir/data/postmaster.pid ]]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  (cd / && runuser -u postgres -- "$bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop) || true
fi
"$here/stop-slurm.sh"

# Processes the test users left (sessions whose parent died survive scancel here).
for user in ood-alice ood-bob; do
  if id -u "$user" >/dev/null 2>&1; then pkill -KILL -u "$user" || true; fi
done

move() {  # PATH: moved into $aside under its own full path
  if [[ -e $1 || -L $1 ]]; then
    install -d -m 0700 "$aside$(dirname "$1")"
    mv "$1" "$aside$1"
    echo "set-aside: moved $1"
  fi
}
for path in "${OOD_MLFLOW_VENVS:-/opt/ood-mlflow}" "${OOD_MLFLOW_TEST_STORES:-/srv/ood-mlflow-tests}" \
    /srv/ood-mlflow-bench /scratch/project_2001234 /etc/lmod/modules/mlflow \
    /etc/slurm/slurm.conf /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm \
    /etc/munge/munge.key /var/lib/munge/munged.seed /var/log/munge /run/munge \
    /root/.config/mlflow; do
  move "$path"
done
shopt -s nullglob
for path in /var/spool/slurmctld.earlier-* /srv/ood-mlflow-fresh-* /tmp/pytest-of-root /tmp/ood-portal-* \
    /tmp/ood-mlflow-* /tmp/ood-browser-*; do
  move "$path"
done
for user in ood-alice ood-bob; do
  if id -u "$user" >/dev/null 2>&1; then
    home=$(getent passwd "$user" | cut -d: -f6)
    move "$home"
    userdel "$user"
    echo "set-aside: removed user $user"
  fi
done
echo "set-aside: done; the earlier state is in $aside"
