#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server for the tests and prints its URL.
#
#   scripts/pg-throwaway.sh OWNER_PID
#
# Installs the Debian package when no PostgreSQL is present (as root, with
# apt-get), creates a data directory under /tmp, and starts the server on a
# free loopback port with trust authentication. initdb and postgres refuse
# to run as root, so as root they run as the `postgres` user. A watchdog
# stops the server and deletes its data directory once process OWNER_PID
# (the test process) has exited. Prints postgres://postgres@127.0.0.1:PORT/postgres.
set -euo pipefail
owner=${1:?usage: pg-throwaway.sh OWNER_PID}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
bin=$(find_bin || true)
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null; }
    bin=$(find_bin)
  else
    echo "pg-throwaway: PostgreSQL is not installed and cannot be installed here (needs root and apt-get)" >&2
    exit 1
  fi
fi

dir=$(mktemp -d /tmp/lifecycle-pg.XXXXXX)
chmod 755 "$dir"
run_pg=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  run_pg=(runuser -u postgres --)
fi
"${run_pg[@]}" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }

started=""
for _ in 1 2 3 4 5 6 7 8; do
  port=$((20000 + RANDOM % 30000))
  if "${run_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 30 \
       -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null 2>&1; then
    started=$port
    break
  fi
done
if [ -z "$started" ]; then
  cat "$dir/data/server.log" >&2 || true
  echo "pg-throwaway: the server did not start" >&2
  exit 1
fi

# The watchdog: stop and clean up when the owner exits.
stop_cmd="${run_pg[*]} $bin/pg_ctl -D $dir/data -m immediate stop"
nohup setsid bash -c "while kill -0 $owner 2>/dev/null; do sleep 1; done; $stop_cmd >/dev/null 2>&1; rm -rf $dir" \
  </dev/null >/dev/null 2>&1 &

echo "postgres://postgres@127.0.0.1:$started/postgres"
