#!/bin/bash
# Install what the tests need on a fresh Debian 12 machine (run as root).
# Idempotent and fast on reruns: apt is skipped when every package is already
# installed, and a venv is skipped when its python already imports the right
# versions. The venvs install side by side (pip is CPU-bound on one core).
# Prints one line per step; tool output goes to a log that is shown only on
# failure.
#
#   OOD_MLFLOW_VENVS  where the venvs live (default /opt/ood-mlflow)
#   PYTHON            interpreter used to create venvs (default /usr/bin/python3)
set -Eeuo pipefail
trap 'echo "install-deps: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

VENVS=${OOD_MLFLOW_VENVS:-/opt/ood-mlflow}
# Debian's python, not whatever python3 is first in root's PATH: Slurm jobs
# run as unprivileged users, who cannot reach e.g. an interpreter in /root.
PYTHON=${PYTHON:-/usr/bin/python3}
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
  ruby ruby-redcarpet            # ERB rendering + OOD's Markdown renderer
  slurm-wlm munge                # one-node cluster (devportal/services)
  apache2                        # OOD-like reverse proxy (devportal/apache.py)
  chromium chromium-driver fonts-dejavu-core   # selenium UI tests
  lmod                           # `module` in job shells, as on real clusters
  postgresql                     # PostgreSQL tracking stores (devportal/services/start-postgres.sh)
  sqlite3 curl procps psmisc rsync netcat-openbsd lsof   # job helpers (port_used, pkill, staging)
  hostname passwd util-linux     # hostname, useradd, runuser (usually present)
  python3 python3-venv           # the venvs' interpreter (see PYTHON)
)

log=$(mktemp /tmp/install-deps.XXXXXX.log)
trap 'rm -f "$log" "$log".*' EXIT

# Run a command quietly; on failure show its output and stop.
quiet() {
  if ! "$@" >>"$log" 2>&1; then
    echo "install-deps: FAILED: $*" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "apt: all ${#APT_PACKAGES[@]} packages installed, skipping"
else
  echo "apt: installing ${missing[*]}"
  quiet apt-get update -qq
  quiet apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}"
fi

PYTHON_HOME=$("$PYTHON" -c 'import os, sys; print(os.path.realpath(os.path.dirname(sys.executable)))')

# ensure_venv NAME RUN_AS CHECK_PY PIP_SPEC...
# CHECK_PY is python code that exits 0 when the venv is already right; it is
# run as RUN_AS, "nobody" for venvs that Slurm jobs of ordinary users run.
ensure_venv() {
  local name=$1 run_as=$2 check=$3 dir="$VENVS/$1" home
  shift 3
  check_venv() {
    if [[ $run_as == root ]]; then "$dir/bin/python" -c "$check"
    else (cd / && runuser -u "$run_as" -- "$dir/bin/python" -c "$check"); fi
  }
  if [[ -x $dir/bin/python ]] && check_venv >/dev/null 2>&1; then
    echo "venv $name: ok, skipping"
    return
  fi
  echo "venv $name: installing $*"
  log="$log.$name"  # its own log: it runs beside the others (ensure_venv runs in a subshell)
  # A venv on another interpreter (e.g. one under /root) is rebuilt.
  home=$(sed -n 's/^home *= *//p' "$dir/pyvenv.cfg" 2>/dev/null || true)
  if [[ ! -x $dir/bin/python || $(readlink -f "$home") != "$PYTHON_HOME" ]]; then
    quiet "$PYTHON" -m venv --clear "$dir"
  fi
  quiet "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@"
  # A wrong pin would otherwise only show up much later, in a test.
  check_venv || { echo "venv $name: check failed after install" >&2; exit 1; }
}

mkdir -p "$VENVS"
chmod 0755 "$VENVS"
# The three venvs at once, each in a subshell; `wait PID` stops the script (set -e) if one failed.
( ensure_venv venv-mlflow3 nobody \
  'import mlflow, psycopg, sys; sys.exit(mlflow.__version__ != "3.17.2")' \
  'mlflow==3.17.2' 'psycopg[binary]' ) &
mlflow3=$!
( ensure_venv venv-mlflow2 nobody \
  'import mlflow, sqlalchemy, psycopg2, sys; sys.exit(not (mlflow.__version__.startswith("2.22.") and tuple(map(int, sqlalchemy.__version__.split(".")[:2])) < (2, 1)))' \
  'mlflow==2.22.*' 'sqlalchemy<2.1' psycopg2-binary ) &
mlflow2=$!
# pytest runs as root, so this one may live on any interpreter.
( ensure_venv venv-tests root \
  'import importlib.metadata as m, pytest, selenium, yaml, sys; sys.exit(m.version("ruff") != "0.17.6")' \
  pytest selenium pyyaml 'ruff==0.17.6' ) &
tests=$!
wait "$mlflow3"
# MLflow 3.17 without any PostgreSQL driver, for the test of that message: a
# hard-linked copy of venv-mlflow3 (a venv works from wherever its pyvenv.cfg
# is) with psycopg uninstalled from the copy only.
nodriver=$VENVS/venv-mlflow3-nodriver
nodriver_check='import importlib.util as u, mlflow, sys; sys.exit(mlflow.__version__ != "3.17.2" or bool(u.find_spec("psycopg") or u.find_spec("psycopg2")))'
if [[ -x $nodriver/bin/python ]] && (cd / && runuser -u nobody -- "$nodriver/bin/python" -c "$nodriver_check") >/dev/null 2>&1; then
  echo "venv venv-mlflow3-nodriver: ok, skipping"
else
  echo "venv venv-mlflow3-nodriver: copying venv-mlflow3 without psycopg"
  rm -rf "$nodriver"
  cp -al "$VENVS/venv-mlflow3" "$nodriver"
  quiet "$nodriver/bin/python" -m pip uninstall -y -q --disable-pip-version-check psycopg psycopg-binary
  (cd / && runuser -u nobody -- "$nodriver/bin/python" -c "$nodriver_check") || { echo "venv venv-mlflow3-nodriver: check failed" >&2; exit 1; }
fi
wait "$mlflow2"
wait "$tests"
echo "install-deps: done"
