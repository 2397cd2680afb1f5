#!/usr/bin/env bash
# Installs what building LabBeam needs besides the Rust toolchain, when it is missing:
# Node.js and npm (the browser client is bundled at build time and embedded in the binary)
# and a C compiler (SQLite is compiled in). Debian/Ubuntu; uses sudo when not root.
set -euo pipefail

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
for extra in "$@"; do
  case "$extra" in
    */*) command -v "${extra##*/}" >/dev/null 2>&1 || missing+=("${extra%%/*}") ;;
    *) dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra") ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
