#!/usr/bin/env bash
# The test command of README.md: installs what the tests need (ci/deps.sh: Debian's rpm 4.18 for the compatibility
# tests, libdb5.3-dev and db5.3-util for the real Berkeley DB backend, xmllint to validate junit.xml
# against its schema, Chromium to render report.html headless),
# then runs the whole test suite. Usable on a fresh Debian machine as root, or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

ci/deps.sh

# Release mode: the crash tests fork real workers and kill them; optimized builds make that fast.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --release --no-fail-fast "$@"
else
  cargo test --workspace --release --no-fail-fast "$@"
fi
