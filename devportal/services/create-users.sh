#!/bin/bash
# Create the unprivileged test users that submit Slurm jobs and own
# batch-connect sessions. Idempotent: existing users are left alone.
# Usage (root): create-users.sh [USER...]   default: ood-alice ood-bob
set -Eeuo pipefail
trap 'echo "create-users: FAILED (exit $?) at line $LINENO: $BASH_COMMAND" >&2' ERR

users=("$@")
[[ ${#users[@]} -gt 0 ]] || users=(ood-alice ood-bob)

for u in "${users[@]}"; do
  if id -u "$u" >/dev/null 2>&1; then
    echo "user $u: exists"
  else
    # A real login shell matters: with --export=NONE slurmd builds the job
    # environment by running the user's login shell (su - USER).
    useradd --create-home --shell /bin/bash "$u"
    echo "user $u: created"
  fi
  home=$(getent passwd "$u" | cut -d: -f6)
  # Private home like on a real cluster; the job writes into it as the user.
  install -d -o "$u" -g "$(id -gn "$u")" -m 0700 "$home"
done
