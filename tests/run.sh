#!/usr/bin/env bash
# Runs every LabBeam check and test: formatting, lints, the web client's type check, unit
# tests and the integration tests that boot the real binary. Installs what is missing
# (through apt and npm) first. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "system packages"
# coturn: its turnutils_uclient is the independent client of the TURN tests and benchmark.
bash packaging/build-deps.sh coturn

step "web client (npm ci, type check)"
(cd web-client && npm ci --no-audit --no-fund --loglevel=error && npm run --silent typecheck)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

step "cargo test (unit and integration)"
cargo test --locked
