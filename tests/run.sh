#!/usr/bin/env bash
# Runs every LabBeam check and test: formatting, lints, the web client's type check, unit
# tests, the Rust integration tests that boot the real binary, and the JavaScript tests that
# drive it with the real socket.io-client. Installs what is missing (through apt and npm)
# first. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says how long the run has taken so far (CI's limit is 90 minutes; keep it under 30).
step() { printf '\n==> %s (at %dm%02ds)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
pgdir=""
finish() {
  if [ -n "$pgdir" ]; then bash tests/postgres.sh stop "$pgdir" && rm -rf "$pgdir"; fi
  printf "\n==> done in %dm%02ds\n" $((SECONDS / 60)) $((SECONDS % 60))
}
trap finish EXIT

# Runs jobs at the same time, each `NAME 'COMMAND'`, each with its output in a log of its
# own; then prints every log in turn (with when the job ended) and fails if any job failed.
# For suites that mostly wait (on servers, timers, browsers and links), not on the CPU.
together() {
  local names=() pids=() logs=() status=0 i
  while [ $# -gt 0 ]; do
    local log
    log=$(mktemp /tmp/labbeam-job.XXXXXX)
    names+=("$1")
    (
      set +e
      bash -c "set -euo pipefail; $2"
      rc=$?
      printf '(%s ended at %dm%02ds, exit %d)\n' "$1" $((SECONDS / 60)) $((SECONDS % 60)) "$rc"
      exit "$rc"
    ) >"$log" 2>&1 &
    pids+=($!)
    logs+=("$log")
    shift 2
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || status=1
  done
  for i in "${!pids[@]}"; do
    printf '\n---- %s\n' "${names[$i]}"
    cat "${logs[$i]}"
    rm -f "${logs[$i]}"
  done
  return "$status"
}

step "system packages"
# coturn: its turnutils_uclient is the independent client of the TURN tests and benchmark.
# slapd and ldap-utils: the campus directory of tests/ldap.rs (tests/slapd.sh), with openssl
# for its test CA.
bash packaging/build-deps.sh coturn slapd ldap-utils openssl

step "web client (npm ci, type check)"
(cd web-client && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck)

step "OpenID provider of the sign-in tests (npm ci in tests/oidc: oidc-provider)"
(cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "PostgreSQL for the store matrix (tests/postgres.sh; root only)"
# A throwaway cluster on a free loopback port, installed from Debian's packages when
# missing. The unit tests, the Rust integration tests and the JavaScript tests run once on
# SQLite and once on PostgreSQL, every test server on a database of its own there
# (TEST_POSTGRES_URL tells the harnesses); the browser, network-namespace and package tests
# run on SQLite only. Without root (PostgreSQL runs as the postgres user) the PostgreSQL
# runs are skipped, saying so.
pg_url=""
if [ "$(id -u)" -eq 0 ]; then
  pgdir=$(mktemp -d /tmp/labbeam-pg.XXXXXX)
  pg_url=$(bash tests/postgres.sh start "$pgdir")
fi
unset TEST_POSTGRES_URL

step "cargo test on SQLite (unit and integration)"
cargo test --locked

step "release build for the Debian package, in the background at the lowest priority"
# The package's optimised build takes minutes of CPU; the suites below spend much of their
# time waiting on servers, timers, browsers and links. Building meanwhile at nice 19 fills
# those gaps (its own target/release, so the debug builds go on); tests/deb.sh's `cargo deb`
# then finds the binary up to date. It starts only now, after the debug builds of clippy and
# cargo test, which it would otherwise slow. Skipped where tests/deb.sh would be.
release_pid=""
if [ -z "${LABBEAM_SKIP_DEB:-}" ] || [ -n "${CI:-}" ]; then
  nice -n 19 cargo build --locked --release --manifest-path appliance/Cargo.toml --bin=labbeam \
    >target/release-build.log 2>&1 &
  release_pid=$!
fi

step "cargo test on PostgreSQL, and at the same time the JavaScript client tests on SQLite"
# PostgreSQL: the same Rust tests and the schema comparison; JavaScript: socket.io-client
# against the real binary (built by cargo test). Each test server has a database or a data
# directory of its own.
cargo build --locked --quiet
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
pg_cargo="echo 'skipped: not root'"
if [ -n "$pg_url" ]; then pg_cargo="TEST_POSTGRES_URL='$pg_url' cargo test --locked"; fi
together "cargo test on PostgreSQL" "$pg_cargo" \
  "JavaScript tests on SQLite" "cd tests/js && node --test --test-concurrency=2 ."

step "JavaScript client tests on PostgreSQL, and the web client's unit tests"
bash packaging/build-deps.sh chromium/chromium
pg_js="echo 'JavaScript tests on PostgreSQL skipped: not root'"
if [ -n "$pg_url" ]; then pg_js="cd tests/js && TEST_POSTGRES_URL='$pg_url' node --test --test-concurrency=2 ."; fi
together "JavaScript tests on PostgreSQL" "$pg_js" "web client unit tests" "cd web-client && npm test"

step "browser tests (Playwright + Debian's Chromium against the real binary, two files at a time)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test --test-concurrency=2 .)

step "network-namespace tests (NAT topologies, TURN over TLS in Chromium, faults; root only)"
# Lab PCs, NAT routers and the appliance in network namespaces (tests/netns/README.md); they
# skip, saying why, without root. certutil: the PCs' NSS databases; openssl: a test campus CA.
if [ "$(id -u)" -eq 0 ]; then bash packaging/build-deps.sh iproute2 nftables libnss3-tools openssl; fi
node --test --test-concurrency=1 tests/netns/topologies.test.mjs tests/netns/turn-tls.test.mjs tests/netns/faults.test.mjs tests/netns/relay-scope.test.mjs tests/netns/health.test.mjs

step "Debian package: build, lintian, unit checks, install/upgrade/purge in a bookworm chroot"
if [ -n "$release_pid" ] && ! wait "$release_pid"; then
  cat target/release-build.log
  exit 1
fi
bash tests/deb.sh
