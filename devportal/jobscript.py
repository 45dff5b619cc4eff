"""The job script of OOD's "basic" batch-connect template, rebuilt for tests.

Written from the description of ood_core's basic batch-connect template
(order of steps, helper functions and their quirks), not from OOD's
code. The quirks matter and are kept on purpose:
- the port_used_* strategies are not exported, so inside the forked script.sh
  `port_used` finds none of them and returns 127;
- create_passwd defaults to 8 characters;
- connection.yml is written (mode 0600) only after after.sh returns;
- before.sh and after.sh are sourced, script.sh is forked and must be executable.
"""

from __future__ import annotations

from pathlib import Path

HELPERS = r"""
source_helpers () {
  random_number () {
    shuf -i ${1}-${2} -n 1
  }
  export -f random_number

  port_used_python () {
    python -c "import socket; socket.socket().connect(('$1',$2))" >/dev/null 2>&1
  }
  port_used_python3 () {
    python3 -c "import socket; socket.socket().connect(('$1',$2))" >/dev/null 2>&1
  }
  port_used_nc () {
    nc -w 2 "$1" "$2" < /dev/null > /dev/null 2>&1
  }
  port_used_lsof () {
    lsof -i :"$2" >/dev/null 2>&1
  }
  port_used_bash () {
    local bash_supported=$(strings /bin/bash 2>/dev/null | grep tcp)
    if [ "$bash_supported" == "/dev/tcp/*/*" ]; then
      (: < /dev/tcp/$1/$2) >/dev/null 2>&1
    else
      return 127
    fi
  }
  # Not exported (as in OOD): only the sourced files can use the strategies.
  port_used () {
    local port="${1#*:}"
    local host=$( (expr "${1}" : '\(.*\):' || echo "localhost") | awk 'END{print $NF}')
    local port_strategies=(port_used_nc port_used_lsof port_used_bash port_used_python port_used_python3)
    for strategy in ${port_strategies[@]}; do
      $strategy $host $port
      status=$?
      if [[ "$status" == "0" ]] || [[ "$status" == "1" ]]; then
        return $status
      fi
    done
    return 127
  }
  export -f port_used

  find_port () {
    local host="${1:-localhost}"
    local min="${2:-%(min_port)d}"
    local max="${3:-%(max_port)d}"
    local port_range=($(shuf -i ${min}-${max}))
    local retries=1
    for ((attempt=0; attempt<=$retries; attempt++)); do
      for port in "${port_range[@]}"; do
        if port_used "${host}:${port}"; then
          continue
        fi
        echo "${port}"
        return 0
      done
    done
    echo "error: failed to find available port in range ${min}..${max}" >&2
    return 1
  }
  export -f find_port

  wait_until_port_used () {
    local port="${1}"
    local time="${2:-30}"
    for ((i=1; i<=time*2; i++)); do
      port_used "${port}"
      port_status=$?
      if [ "$port_status" == "0" ]; then
        return 0
      elif [ "$port_status" == "127" ]; then
         echo "commands to find port were either not found or inaccessible."
         echo "command options are lsof, nc, bash's /dev/tcp, or python (or python3) with socket lib."
         return 127
      fi
      sleep 0.5
    done
    return 1
  }
  export -f wait_until_port_used

  create_passwd () (
    set +o pipefail
    tr -cd 'a-zA-Z0-9' < /dev/urandom 2> /dev/null | head -c${1:-%(password_size)d}
  )
  export -f create_passwd
}
export -f source_helpers
"""


def basic_job_script(staged_root: Path, batch_connect: dict) -> str:
    """The script text OOD submits (shebang included, as the Slurm adapter adds it)."""
    root = str(staged_root)
    conn_params = list(dict.fromkeys(list(batch_connect.get("conn_params", [])) + ["host", "port", "password"]))
    yml_lines = "\\n".join(f"{p}: ${p}" for p in conn_params)
    timeout = str(batch_connect.get("timeout", "") or "")
    run_script = f'timeout {timeout} "{root}/script.sh"' if timeout else f'"{root}/script.sh"'
    helpers = HELPERS % {
        "min_port": int(batch_connect.get("min_port", 2000)),
        "max_port": int(batch_connect.get("max_port", 65535)),
        "password_size": int(batch_connect.get("password_size", 8)),
    }
    body = f"""
cd {root}

export host
export port

create_yml () {{
  echo "Generating connection YAML file..."
  (
    umask 077
    echo -e "{yml_lines}" > "{root}/connection.yml"
  )
}}

clean_up () {{
  echo "Cleaning up..."
  [[ -e "{root}/clean.sh" ]] && source "{root}/clean.sh"
  [[ ${{SCRIPT_PID}} ]] && pkill -P ${{SCRIPT_PID}} || :
  pkill -P $$
  exit ${{1:-0}}
}}
{helpers}
source_helpers

{batch_connect.get("set_host", "host=$(hostname)")}

[[ -e "{root}/before.sh" ]] && source "{root}/before.sh"

echo "Script starting..."
{run_script} &
SCRIPT_PID=$!

[[ -e "{root}/after.sh" ]] && source "{root}/after.sh"

create_yml

wait ${{SCRIPT_PID}} || clean_up 1

clean_up
"""
    header = batch_connect.get("header", "")
    wrapped = batch_connect.get("script_wrapper", "%s") % body
    return "#!/bin/bash\n" + "\n".join([header, wrapped, batch_connect.get("footer", "")]) + "\n"
