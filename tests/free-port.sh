# Sourced by tests/postgres.sh and tests/slapd.sh (which define `die`): prints a port of
# 127.0.0.1 that nothing listens on now. The server's own start is the real test, which
# those scripts retry with another port when it fails.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1"
}
