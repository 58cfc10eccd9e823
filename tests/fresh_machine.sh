#!/bin/bash
# Usage (root, Linux): tests/fresh_machine.sh make demo   -- in a fresh clone, as in docs/postgres.md.
# Runs "$@" as on a machine that never had PostgreSQL: in a private mount namespace,
# /usr/lib/postgresql is an empty tmpfs (so /usr/local/bin/initdb etc. dangle), every PATH
# folder holding a PostgreSQL program is shadowed without it, and /etc is a copy without the
# postgres user (useradd inside writes to the copy only).
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "error: run as root (unshare -m and mount need it)" >&2; exit 2; }
work=$(mktemp -d /tmp/fresh-machine-XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a /etc $work/etc
for f in passwd shadow; do sed -i '/^postgres:/d' $work/etc/$f; done
for f in group gshadow; do sed -i '/^postgres:/d; s/,postgres$//; s/:postgres$/:/; s/,postgres,/,/; s/:postgres,/:/' $work/etc/$f; done
unshare -m bash -c '
  set -e
  mount -t tmpfs none /usr/lib/postgresql
  mount --bind '$work'/etc /etc
  shadowpath=""
  i=0
  IFS=: read -ra dirs <<< "$PATH"
  for d in "${dirs[@]}"; do
    i=$((i+1))
    if ls "$d" 2>/dev/null | grep -qE "^(pg_.*|initdb|postgres|postmaster|psql)$"; then
      s='$work'/path$i; mkdir -p $s
      for e in "$d"/*; do n=$(basename "$e"); echo "$n" | grep -qE "^(pg_.*|initdb|postgres|postmaster|psql)$" || ln -s "$e" "$s/$n"; done
      d=$s
    fi
    shadowpath="$shadowpath${shadowpath:+:}$d"
  done
  export PATH="$shadowpath"
  exec "$@"
' bash "$@"
