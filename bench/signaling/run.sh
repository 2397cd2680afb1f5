#!/usr/bin/env bash
# Signaling benchmark: the labbeam binary against a minimal Node.js socket.io server with
# the same presence + relay logic, same client load, one run. Ends by itself in ~10 min.
#
#   bash bench/signaling/run.sh [bench.mjs options, e.g. --n 1000 --storm-secs 5 --perf]
#
# Uses $LABBEAM_BIN, else the release binary in ${CARGO_TARGET_DIR:-<repo>/target}
# (built here with `cargo build --release -p labbeam` if it is missing).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -z "${LABBEAM_BIN:-}" ]]; then
  export LABBEAM_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/labbeam"
  if [[ ! -x "$LABBEAM_BIN" ]]; then
    echo "building the release binary ($LABBEAM_BIN) ..." >&2
    (cd "$repo" && cargo build --release -p labbeam)
  fi
fi
[[ -x "$LABBEAM_BIN" ]] || { echo "no labbeam binary at $LABBEAM_BIN" >&2; exit 1; }

# 10,000 sockets on each side of loopback: raise the open-file limit as far as allowed.
hard="$(ulimit -Hn)"
if [[ "$hard" == unlimited ]]; then ulimit -n 65536; else ulimit -n "$hard"; fi
if (( $(ulimit -n) < 12000 )); then
  echo "warning: open-file limit is $(ulimit -n); N=10000 needs about 11000 (raise the hard limit)" >&2
fi

cd "$here"
if [[ ! -d node_modules/socket.io || ! -d node_modules/socket.io-client ]]; then
  npm ci --no-audit --no-fund >&2
fi
# The whole run is bounded inside bench.mjs (9.5 min budget); `timeout` is the backstop.
exec timeout --kill-after=20 630 node bench.mjs "$@"
