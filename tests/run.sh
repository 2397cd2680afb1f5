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

step "system packages"
# coturn: its turnutils_uclient is the independent client of the TURN tests and benchmark.
bash packaging/build-deps.sh coturn

step "web client (npm ci, type check)"
(cd web-client && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "PostgreSQL for the store tests (tests/postgres.sh; root only)"
# A throwaway cluster on a free loopback port: the PostgreSQL halves of the store tests run
# against it; without root they say they are skipped.
if [ "$(id -u)" -eq 0 ]; then
  pgdir=$(mktemp -d /tmp/labbeam-pg.XXXXXX)
  TEST_POSTGRES_URL=$(bash tests/postgres.sh start "$pgdir")
  export TEST_POSTGRES_URL
fi

step "cargo test (unit and integration)"
cargo test --locked

step "JavaScript client tests (socket.io-client against the real binary)"
cargo build --locked --quiet
(cd tests/js && npm ci --no-audit --no-fund --loglevel=error && node --test --test-concurrency=2 .)

step "browser tests (Playwright + Debian's Chromium: two browsers against the real binary)"
bash packaging/build-deps.sh chromium/chromium
(cd web-client && npm test)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && node --test --test-concurrency=1 .)

step "network-namespace tests (NAT topologies, TURN over TLS in Chromium, faults; root only)"
# Lab PCs, NAT routers and the appliance in network namespaces (tests/netns/README.md); they
# skip, saying why, without root. certutil: the PCs' NSS databases; openssl: a test campus CA.
if [ "$(id -u)" -eq 0 ]; then bash packaging/build-deps.sh iproute2 nftables libnss3-tools openssl; fi
node --test --test-concurrency=1 tests/netns/topologies.test.mjs tests/netns/turn-tls.test.mjs tests/netns/faults.test.mjs tests/netns/relay-scope.test.mjs

step "Debian package: build, lintian, unit checks, install/upgrade/purge in a bookworm chroot"; bash tests/deb.sh
