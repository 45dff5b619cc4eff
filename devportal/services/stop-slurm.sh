#!/bin/bash
# Stop the daemons started by start-slurm.sh (slurmd, slurmctld, munged),
# using their pid files so nothing else on the machine is touched.
# Idempotent: a daemon that is not running is skipped.
#   OOD_MLFLOW_SLURM_DIR   as for start-slurm.sh: unset for the test bed's cluster,
#                          or the folder of a cluster of its own
set -uo pipefail

if [[ -n ${OOD_MLFLOW_SLURM_DIR:-} ]]; then
  run=$OOD_MLFLOW_SLURM_DIR/run munge_run=$OOD_MLFLOW_SLURM_DIR/munge/run
else
  run=/run/slurm munge_run=/run/munge
fi

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
stop_pidfile slurmd "$run/slurmd.pid"
stop_pidfile slurmctld "$run/slurmctld.pid"
stop_pidfile munged "$munge_run/munged.pid"
exit 0
