#!/usr/bin/env bash
# The test command of README.md: installs what the tests need (Debian's rpm 4.18 for the compatibility tests,
# xmllint to validate junit.xml against its schema, Chromium to render report.html headless), then runs the
# whole test suite. Usable on a fresh Debian machine as root, or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v rpm >/dev/null 2>&1 || need+=(rpm)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "ci/test.sh: installing ${need[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Release mode: the crash tests fork real workers and kill them; optimized builds make that fast.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --release --no-fail-fast "$@"
else
  cargo test --workspace --release --no-fail-fast "$@"
fi
