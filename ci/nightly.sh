#!/usr/bin/env bash
# What one nightly CI job runs; usable from any CI (GitHub Actions: ci/github/nightly.yml, GitLab CI:
# ci/gitlab/nightly.gitlab-ci.yml — both run it in a Debian bookworm container, see README "Running it nightly").
#
#   ci/nightly.sh run SCENARIO OUT [--shard I/N] [--backend B] [--duration 20m | --cycles N]
#       Builds dbtorture (release), runs one shard (1-based: 1/4 … 4/4) of SCENARIO with tonight's seed, writes
#       OUT/summary.json, events.jsonl, junit.xml, report.html and bundles/*.tar.gz. Exit status: dbtorture's
#       (0 clean, 1 an unexpected outcome, 3 harness error, 130 interrupted) — reports are written in every case.
#   ci/nightly.sh qemu SCENARIO OUT [--duration 45m] [dbtorture qemu options]
#       Builds the qemu ARM guest (qemu/build-guest.sh) and runs SCENARIO inside it with tonight's seed.
#   ci/nightly.sh merge OUT DIR...
#       Combines the shards' output directories into one report (dbtorture merge).
#   ci/nightly.sh merge-all IN OUT
#       Every run's output directory below IN (the downloaded artifacts), grouped by the scenario its
#       summary.json names, merged into OUT/<scenario>/. Exit status 1 when any merge failed.
#
# Seed: $DBTORTURE_SEED, else the date (YYYYMMDD, UTC): every night explores new cycles, every job of one night
# runs the same ones, and a failure is reproduced with the seed printed in its report.
# Paths (SCENARIO, OUT, DIR) are taken relative to the current directory; the build is the checkout's this
# script lives in.
set -euo pipefail
export CARGO_TERM_COLOR=never
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
usage() {
  echo "usage: ci/nightly.sh run SCENARIO OUT [options] | qemu SCENARIO OUT [options] | merge OUT DIR... | merge-all IN OUT" >&2
  exit 2
}

# The build links Berkeley DB 5.3 and the rpm/libdb targets need their tools: install what is missing.
build() {
  "$root/ci/deps.sh" --run
  cargo build --release --quiet --manifest-path "$root/Cargo.toml"
  bin=${CARGO_TARGET_DIR:-$root/target}/release/dbtorture
}

seed=${DBTORTURE_SEED:-$(date -u +%Y%m%d)}
cmd=${1:-}
case "$cmd" in
  run)
    [ $# -ge 3 ] || usage
    scenario=$2 out=$3
    shift 3
    build
    echo "ci/nightly.sh: $scenario seed $seed $* → $out"
    status=0
    "$bin" run "$scenario" --seed "$seed" --out "$out" --quiet "$@" || status=$?
    # A one-line verdict for the CI log; the full story is in $out/report.html.
    python3 - "$out/summary.json" <<'PY' || true
import json, sys
s = json.load(open(sys.argv[1]))
r = s["failure_rate"]
print(f"{s['scenario']} seed {s['seed']}: {s['cycles']} cycles, {s['kills']} kills, {s['unexpected']} unexpected; "
      f"failure rate {r.get('per_10k')} per 10k kills [{r.get('low_per_10k')}, {r.get('high_per_10k')}]")
PY
    exit $status
    ;;
  qemu)
    [ $# -ge 3 ] || usage
    scenario=$2 out=$3
    shift 3
    build
    "$root/qemu/build-guest.sh"
    echo "ci/nightly.sh: qemu $scenario seed $seed $* → $out"
    exec "$bin" qemu --scenario "$scenario" --seed "$seed" --out "$out" --quiet "$@"
    ;;
  merge)
    [ $# -ge 3 ] || usage
    out=$2
    shift 2
    build
    exec "$bin" merge "$@" --out "$out"
    ;;
  merge-all)
    [ $# -eq 3 ] || usage
    in=$2 out=$3
    [ -d "$in" ] || { echo "ci/nightly.sh: no directory $in" >&2; exit 2; }
    build
    # One line per run directory: "<scenario>\t<dir>", sorted, from each summary.json.
    groups=$(python3 - "$in" <<'PY'
import json, os, sys
rows = []
for d, _, files in os.walk(sys.argv[1]):
    if "summary.json" in files and "events.jsonl" in files:
        rows.append((json.load(open(os.path.join(d, "summary.json")))["scenario"], d))
for s, d in sorted(rows):
    print(f"{s}\t{d}")
PY
    )
    [ -n "$groups" ] || { echo "ci/nightly.sh: no run output (summary.json + events.jsonl) below $in" >&2; exit 1; }
    status=0
    for sc in $(cut -f1 <<<"$groups" | sort -u); do
      mapfile -t dirs < <(awk -F'\t' -v s="$sc" '$1 == s { print $2 }' <<<"$groups")
      echo "ci/nightly.sh: merging ${#dirs[@]} run(s) of $sc → $out/$sc"
      "$bin" merge "${dirs[@]}" --out "$out/$sc" || status=1
    done
    exit $status
    ;;
  *)
    usage
    ;;
esac
