#!/bin/bash
# Stop the daemons started by start-slurm.sh (slurmd, slurmctld, munged),
# using their pid files so nothing else on the machine is touched.
# Idempotent: a daemon that is not running is skipped.
set -uo pipefail

stop_pidfile() {  # NAME PIDFILE
  local name=$1 file=$2 pid
  if [[ -s $file ]] && pid=$(cat "$file") && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "stop-slurm: $name killed"
    else echo "stop-slurm: $name stopped"; fi
  else
    echo "stop-slurm: $name not running"
  fi
}

# slurmd first so running job steps are cleaned up while slurmctld still
# exists; munged last because both Slurm daemons need it to shut down.
stop_pidfile slurmd /run/slurm/slurmd.pid
stop_pidfile slurmctld /run/slurm/slurmctld.pid
stop_pidfile munged /run/munge/munged.pid
exit 0
