#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests that need one (tests/store_schema.rs reads its address
# from TEST_POSTGRES_URL):
#
#   bash tests/postgres.sh start DIR   prints postgres://labbeam@127.0.0.1:PORT/postgres
#   bash tests/postgres.sh stop DIR
#
#   TEST_POSTGRES_URL=$(bash tests/postgres.sh start /tmp/pgtest) cargo test --test store_schema
#
# `start` installs Debian's postgresql package when no initdb is found, makes a cluster in
# DIR/data (owned by the postgres user, which PostgreSQL must run as), and starts it on a
# free port of 127.0.0.1, with its socket in DIR and nothing else reachable. Anyone on this
# machine may connect without a password (trust on loopback): it is a test cluster, and
# for the same reason it does not wait for the disk (fsync and synchronous_commit off). It
# allows 400 connections, for many test servers in parallel, each with its own pool. The
# role `labbeam` is a superuser, so tests can create and drop their own databases.
# Starting a cluster that is already running prints its address again; starting a stopped
# one starts it again, on its previous port if that is free, else on a new free port. Must
# run as root (it switches to the postgres user with runuser).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/free-port.sh"

die() {
  echo "tests/postgres.sh: $*" >&2
  exit 1
}

[ $# -eq 2 ] || die "usage: bash tests/postgres.sh start|stop DIR"
action=$1
[ "$(id -u)" -eq 0 ] || die "run as root: PostgreSQL runs as the postgres user, and this script switches to it with runuser"
[ -n "$2" ] || die "DIR must not be empty"
if [ "$action" = start ]; then
  mkdir -p "$2" 2>/dev/null || die "cannot create $2"
fi
[ -d "$2" ] || die "$2 is not a folder"
dir=$(cd "$2" && pwd)
data="$dir/data"

# The newest installed PostgreSQL's programs.
bindir() {
  local initdb
  initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  [ -n "$initdb" ] && dirname "$initdb"
}

as_postgres() {
  runuser -u postgres -- "$@"
}

running() {
  [ -f "$data/PG_VERSION" ] && as_postgres "$bin/pg_ctl" status -D "$data" >/dev/null 2>&1
}

url() {
  echo "postgres://labbeam@127.0.0.1:$(cat "$dir/port")/postgres"
}

case "$action" in
  start)
    bin=$(bindir || true)
    if [ -z "$bin" ]; then
      echo "tests/postgres.sh: installing Debian's postgresql package" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >&2 || die "apt-get update failed"
      apt-get install -y -qq --no-install-recommends postgresql >&2 || die "apt-get install postgresql failed"
      bin=$(bindir || true)
      [ -n "$bin" ] || die "postgresql is installed but /usr/lib/postgresql/*/bin/initdb is missing"
    fi
    id postgres >/dev/null 2>&1 || die "there is no postgres user (the postgresql package makes it)"

    if running; then
      url
      exit 0
    fi

    chown postgres: "$dir" || die "cannot give $dir to the postgres user"
    as_postgres test -w "$dir" -a -x "$dir" ||
      die "the postgres user cannot write $dir (is a parent folder closed to it?); choose a folder under /tmp"

    if [ ! -f "$data/PG_VERSION" ]; then
      as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || die "initdb failed; see $dir/initdb.log"
      # Unix socket (inside DIR) and 127.0.0.1 only, without passwords.
      as_postgres tee "$data/pg_hba.conf" >/dev/null <<'EOF'
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
      as_postgres tee -a "$data/postgresql.conf" >/dev/null <<EOF

# tests/postgres.sh: a throwaway test cluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 400
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi

    started=""
    # A stopped cluster comes back on its previous port when that is free, so the address
    # its clients hold works again (tests/js/store-outage.test.mjs stops and starts one).
    previous=""
    if [ -f "$dir/port" ]; then previous=$(cat "$dir/port"); fi
    for _ in 1 2 3 4 5; do
      if [ -n "$previous" ]; then port=$previous; previous=""; else port=$(free_port); fi
      as_postgres truncate -s 0 "$dir/server.log"
      if as_postgres "$bin/pg_ctl" start -D "$data" -w -t 60 -l "$dir/server.log" -o "-p $port" >/dev/null 2>&1; then
        started=yes
        break
      fi
      # Another process took the port first: try another one; anything else is fatal.
      grep -q "could not bind\|could not create listen socket" "$dir/server.log" 2>/dev/null ||
        die "PostgreSQL did not start; see $dir/server.log"
    done
    [ -n "$started" ] || die "PostgreSQL did not start on any free port; see $dir/server.log"
    echo "$port" >"$dir/port"

    for _ in $(seq 1 60); do
      as_postgres "$bin/pg_isready" -q -h "$dir" -p "$port" && break
      sleep 0.5
    done
    as_postgres "$bin/pg_isready" -q -h "$dir" -p "$port" || die "PostgreSQL does not accept connections; see $dir/server.log"

    as_postgres "$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'EOF' ||
SELECT 'CREATE ROLE labbeam LOGIN SUPERUSER'
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'labbeam') \gexec
EOF
      die "could not create the role labbeam; see $dir/server.log"
    url
    ;;
  stop)
    bin=$(bindir || true)
    [ -n "$bin" ] || die "PostgreSQL is not installed (nothing to stop)"
    if ! running; then
      echo "tests/postgres.sh: no PostgreSQL is running in $dir" >&2
      exit 0
    fi
    as_postgres "$bin/pg_ctl" stop -D "$data" -m fast >/dev/null || die "pg_ctl stop failed; see $dir/server.log"
    ;;
  *)
    die "usage: bash tests/postgres.sh start|stop DIR (not $action)"
    ;;
esac
