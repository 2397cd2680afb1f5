#!/usr/bin/env bash
# Where the signaling server's memory per connection goes: runs the benchmark's connect
# phase against LabBeam under heaptrack, kills the server (SIGKILL) once N devices are
# connected and the presence fan-out is measured, and sorts what the connections still
# hold by owner (heap-classify.py). About a minute for N = 1,000.
#
#   bash bench/signaling/heap.sh [N]        (default 1000; needs `apt install heaptrack`)
#
# Uses $LABBEAM_BIN, which must keep its symbols, e.g.
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_STRIP=false \
#     cargo build --release -p labbeam
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
n="${1:-1000}"
command -v heaptrack >/dev/null || { echo "heaptrack is not installed (apt install heaptrack)" >&2; exit 1; }
[[ -x "${LABBEAM_BIN:-}" ]] || { echo "set LABBEAM_BIN to an unstripped release build" >&2; exit 1; }

work="$(mktemp -d)"
trap 'pkill -KILL -f "$work/" 2>/dev/null || true; rm -rf "$work"' EXIT
# The benchmark starts the binary for set-up commands too: only `serve` runs under heaptrack.
cat >"$work/labbeam" <<EOF
#!/usr/bin/env bash
if [[ "\$1" == serve ]]; then exec heaptrack -o "$work/heap-\$\$" "$LABBEAM_BIN" "\$@"; fi
exec "$LABBEAM_BIN" "\$@"
EOF
chmod +x "$work/labbeam"

LABBEAM_BIN="$work/labbeam" bash "$here/run.sh" --n "$n" --servers labbeam --storm-secs 1 \
  --quiet-wait-secs 1 >"$work/bench.log" 2>&1 &
bench=$!
for _ in $(seq 1 600); do
  grep -q 'fan-out joined' "$work/bench.log" && break
  kill -0 "$bench" 2>/dev/null || { cat "$work/bench.log" >&2; exit 1; }
  sleep 0.5
done
grep -q 'fan-out joined' "$work/bench.log" || { echo "the devices never all connected" >&2; exit 1; }
# The newest server is the measured one (the benchmark may have started another first);
# its parent is the heaptrack script that writes its trace.
server="$(pgrep -n -f -- "$LABBEAM_BIN serve")"
tracer="$(ps -o ppid= -p "$server" | tr -d ' ')"
kill -KILL "$server"
# heaptrack writes the rest of the trace after the process is gone: let it finish before
# the benchmark, which kills its children when it exits, is stopped.
for _ in $(seq 1 120); do
  kill -0 "$tracer" 2>/dev/null || break
  sleep 1
done
kill "$bench" 2>/dev/null || true
wait "$bench" 2>/dev/null || true
trace="$(ls -S "$work"/heap-*.zst | head -1)"
heaptrack_print -f "$trace" --print-leaks 1 --print-peaks 0 --print-allocators 0 \
  --print-temporary 0 -n 400 -s 400 >"$work/leaks.txt" 2>/dev/null
grep -E '^total memory leaked' "$work/leaks.txt"
python3 "$here/heap-classify.py" "$work/leaks.txt" "$n"
