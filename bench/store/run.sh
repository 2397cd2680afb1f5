#!/usr/bin/env bash
# Store benchmark: LabBeam on SQLite and on PostgreSQL with 1,000,000 transfer rows, same
# data and same client load, one run (< 10 min). Must run as root (PostgreSQL runs as the
# postgres user; tests/postgres.sh switches to it).
#
#   bash bench/store/run.sh [bench.mjs options, e.g. --requests 100 --backends sqlite]
#
# Uses $LABBEAM_BIN, else the release binary in ${CARGO_TARGET_DIR:-<repo>/target} (built
# with `cargo build --release -p labbeam` if it is missing). Starts its own PostgreSQL
# cluster on a free loopback port and removes it, the servers and the data on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

[[ "$(id -u)" -eq 0 ]] || { echo "bench/store: run as root (PostgreSQL runs as the postgres user)" >&2; exit 1; }
for tool in node psql sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench/store: $tool is missing (apt-get install nodejs postgresql-client sqlite3)" >&2; exit 1; }
done

if [[ -z "${LABBEAM_BIN:-}" ]]; then
  export LABBEAM_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/labbeam"
  if [[ ! -x "$LABBEAM_BIN" ]]; then
    echo "building the release binary ($LABBEAM_BIN) ..." >&2
    (cd "$repo" && cargo build --release -p labbeam)
  fi
fi
[[ -x "$LABBEAM_BIN" ]] || { echo "bench/store: no labbeam binary at $LABBEAM_BIN" >&2; exit 1; }

if [[ ! -d "$here/node_modules/socket.io-client" ]]; then
  (cd "$here" && npm ci --no-audit --no-fund >&2)
fi

work="$(mktemp -d /tmp/labbeam-bench-store.XXXXXX)"
# The cluster's folder must be reachable by the postgres user: not inside the 0700 $work.
pgdir="$(mktemp -d /tmp/labbeam-bench-store-pg.XXXXXX)"
export BENCH_WORK="$work" BENCH_PG_DIR="$pgdir" BENCH_PIDS="$work/pids"
cleanup() {
  # Servers left behind by a bench.mjs that was killed (each pid is one this run started).
  if [[ -f "$BENCH_PIDS" ]]; then
    while read -r pid; do
      if [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$(readlink -f "$LABBEAM_BIN")" ]]; then kill -TERM "$pid"; fi
    done <"$BENCH_PIDS"
  fi
  bash "$repo/tests/postgres.sh" stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT
echo "starting PostgreSQL in $pgdir ..." >&2
BENCH_PG_URL="$(bash "$repo/tests/postgres.sh" start "$pgdir")"
export BENCH_PG_URL

# bench.mjs keeps to a 9.5-minute budget; `timeout` is the backstop.
timeout --kill-after=20 600 node "$here/bench.mjs" "$@"
