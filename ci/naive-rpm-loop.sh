#!/usr/bin/env bash
# A naive kill loop of the real rpm, as a user would write it in shell: the yardstick `dbtorture bench rpm`
# measures dbtorture's real-rpm scenario against (issue 16: dbtorture should run >= 5x its cycles/s).
#
# Every cycle: copy a fresh root, start `rpm -U` of the scenario's packages, SIGKILL it after a random delay,
# then `rpmdb --verifydb`, `rpm -qa`, every installed package's files through `rpm -qf` and its provides
# through `rpm -q --whatprovides` (each must name the package), and install + erase a probe package.
# The first failing check stops the loop: it prints `naive-rpm-loop: FAIL cycle N: ...` and exits 1.
# Otherwise the last line is `naive-rpm-loop: N cycles in S s: R cycles/s`.
#
# PKGDIR is written by `dbtorture __naive-rpm-packages SCENARIO PKGDIR` (the same packages, from the same
# seed, dbtorture's scenario installs): initial/*.rpm (the fresh root's packages), cycle/*.rpm (what each
# cycle's rpm -U installs), probe.rpm and delay-ms ("MIN MAX", the scenario's kill delay).
#
# Never the system's rpm database: every rpm runs with --root in a new scratch directory (mktemp -d) and
# --dbpath /var/lib/rpm inside it.
#
# usage: ci/naive-rpm-loop.sh [--cycles N] [--seconds S] [--seed N] [--workdir DIR] [--template ROOT]
#                             [--verbose] PKGDIR
#   --cycles N       stop after N cycles            --seconds S   stop at the first cycle end after S s
#   --template ROOT  copy ROOT (a root whose rpm database is ROOT/var/lib/rpm) instead of building a fresh one
#   --workdir DIR    make the scratch directory inside DIR (default: $TMPDIR or /tmp)
# Exit: 0 every cycle passed, 1 a check failed, 2 bad usage, 3 the loop could not set itself up.
set -uo pipefail

usage() { sed -n '/^# usage:/,/^# Exit:/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "naive-rpm-loop: $*" >&2; exit 2; }

cycles=0 seconds=0 seed=$$ workdir="${TMPDIR:-/tmp}" template="" verbose=0 pkgdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) [ $# -ge 2 ] || usage; cycles=$2; shift 2 ;;
    --seconds) [ $# -ge 2 ] || usage; seconds=$2; shift 2 ;;
    --seed) [ $# -ge 2 ] || usage; seed=$2; shift 2 ;;
    --workdir) [ $# -ge 2 ] || usage; workdir=$2; shift 2 ;;
    --template) [ $# -ge 2 ] || usage; template=$2; shift 2 ;;
    --verbose) verbose=1; shift ;;
    -h|--help) usage ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$pkgdir" ] || die "one PKGDIR only"; pkgdir=$1; shift ;;
  esac
done
[ -n "$pkgdir" ] || usage
[[ "$cycles" =~ ^[0-9]+$ ]] || die "--cycles $cycles: not a number"
[[ "$seed" =~ ^[0-9]+$ ]] || die "--seed $seed: not a number"
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--seconds $seconds: not a number"
if [ "$cycles" = 0 ] && [ "$seconds" = 0 ]; then cycles=10; fi
for f in "$pkgdir/probe.rpm" "$pkgdir/delay-ms"; do
  [ -f "$f" ] || die "$f missing: write PKGDIR with dbtorture __naive-rpm-packages SCENARIO PKGDIR"
done
shopt -s nullglob
cycle_pkgs=("$pkgdir"/cycle/*.rpm)
initial_pkgs=("$pkgdir"/initial/*.rpm)
[ ${#cycle_pkgs[@]} -gt 0 ] || die "$pkgdir/cycle/ holds no .rpm files"
[ -z "$template" ] || [ -d "$template/var/lib/rpm" ] || die "--template $template: no var/lib/rpm in it"
read -r delay_min delay_max < "$pkgdir/delay-ms" || die "$pkgdir/delay-ms: expected MIN MAX"
command -v rpm >/dev/null && command -v rpmdb >/dev/null || { echo "naive-rpm-loop: rpm is not installed" >&2; exit 3; }

scratch=$(mktemp -d "$workdir/naive-rpm-loop.XXXXXX") || exit 3
trap 'rm -rf "$scratch"' EXIT
root="$scratch/root"

# Debian's rpm refuses to install without --force-debian; others do not know the option.
debian=()
if rpm --force-debian --version >/dev/null 2>&1; then debian=(--force-debian); fi
# The workload's packages: no dependency closure, any arch, shared paths, downgrades allowed.
write_flags=(--nodeps --noscripts --notriggers)
install_flags=("${debian[@]}" "${write_flags[@]}" --ignorearch --ignoreos --replacefiles --oldpackage)
qf='%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n'
r() { rpm --root "$root" --dbpath /var/lib/rpm "$@"; }

fail() { echo "naive-rpm-loop: FAIL cycle $n: $*"; exit 1; }
say() { [ "$verbose" = 0 ] || echo "$*" >&2; }

# The fresh root every cycle starts from.
fresh="$scratch/fresh"
if [ -n "$template" ]; then
  cp -a "$template" "$fresh" || exit 3
else
  mkdir -p "$fresh" || exit 3
  rpm --root "$fresh" --dbpath /var/lib/rpm --initdb || { echo "naive-rpm-loop: rpm --initdb failed" >&2; exit 3; }
  if [ ${#initial_pkgs[@]} -gt 0 ]; then
    rpm --root "$fresh" --dbpath /var/lib/rpm -U "${install_flags[@]}" "${initial_pkgs[@]}" \
      || { echo "naive-rpm-loop: installing the initial packages failed" >&2; exit 3; }
  fi
fi
probe_name=$(rpm -qp --nosignature --qf '%{NAME}' "$pkgdir/probe.rpm" 2>/dev/null) || exit 3

RANDOM=$seed
start=$EPOCHREALTIME
n=0
while :; do
  n=$((n + 1))
  rm -rf "$root" && cp -a "$fresh" "$root" || exit 3

  # rpm itself in the background (not through r(), whose subshell would take the SIGKILL instead).
  rpm --root "$root" --dbpath /var/lib/rpm -U "${install_flags[@]}" "${cycle_pkgs[@]}" >/dev/null 2>&1 &
  pid=$!
  delay=$(( delay_min + (RANDOM * 32768 + RANDOM) % (delay_max - delay_min + 1) ))
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  if kill -9 "$pid" 2>/dev/null; then killed="SIGKILL after $delay ms"; else killed="rpm had exited before $delay ms"; fi
  wait "$pid" 2>/dev/null

  out=$(rpmdb --root "$root" --dbpath /var/lib/rpm --verifydb 2>&1) || fail "rpmdb --verifydb: $out"
  out=$(r -qa --qf "$qf" 2>&1) || fail "rpm -qa: $out"
  mapfile -t installed <<< "$out"
  [ -n "${installed[0]:-}" ] || installed=()
  nfiles=0 nprovides=0
  for p in "${installed[@]}"; do
    files=$(r -q --qf '[%{FILENAMES}\n]' "$p" 2>&1) || fail "rpm -q $p (its files): $files"
    mapfile -t fl <<< "$files"
    if [ -n "${fl[0]:-}" ]; then
      owners=$(r -qf --qf "$qf" "${fl[@]}" 2>&1) || fail "rpm -qf of $p's files: $owners"
      grep -qxF "$p" <<< "$owners" || fail "rpm -qf of $p's files does not name $p: $owners"
      nfiles=$((nfiles + ${#fl[@]}))
    fi
    provides=$(r -q --qf '[%{PROVIDENAME}\n]' "$p" 2>&1) || fail "rpm -q $p (its provides): $provides"
    mapfile -t pl <<< "$provides"
    if [ -n "${pl[0]:-}" ]; then
      owners=$(r -q --whatprovides --qf "$qf" "${pl[@]}" 2>&1) || fail "rpm -q --whatprovides of $p's provides: $owners"
      grep -qxF "$p" <<< "$owners" || fail "rpm -q --whatprovides of $p's provides does not name $p: $owners"
      nprovides=$((nprovides + ${#pl[@]}))
    fi
  done
  out=$(r -U "${install_flags[@]}" "$pkgdir/probe.rpm" 2>&1) || fail "installing the probe package: $out"
  out=$(r -q "$probe_name" 2>&1) || fail "the probe package is not installed after rpm -U: $out"
  out=$(r -e "${debian[@]}" "${write_flags[@]}" "$probe_name" 2>&1) || fail "erasing the probe package: $out"
  if out=$(r -q "$probe_name" 2>&1); then fail "the probe package is still installed after rpm -e: $out"; fi
  say "cycle $n: $killed; ${#installed[@]} packages, $nfiles files and $nprovides provides cross-checked; probe ok"

  [ "$cycles" = 0 ] || [ "$n" -lt "$cycles" ] || break
  if [ "$seconds" != 0 ] && awk -v a="$start" -v b="$EPOCHREALTIME" -v s="$seconds" 'BEGIN { exit !(b - a >= s) }'; then
    break
  fi
done
awk -v a="$start" -v b="$EPOCHREALTIME" -v n="$n" \
  'BEGIN { t = b - a; printf "naive-rpm-loop: %d cycles in %.3f s: %.2f cycles/s\n", n, t, n / t }'
