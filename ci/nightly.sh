#!/usr/bin/env bash
# What one nightly CI job runs; usable from any CI (GitHub Actions: ci/github/nightly.yml).
#
#   ci/nightly.sh run SCENARIO OUT [--shard I/N] [--backend B] [--duration 20m | --cycles N]
#       Builds dbtorture (release), runs one shard of SCENARIO with tonight's seed, writes OUT/summary.json,
#       events.jsonl, junit.xml, report.html and bundles/*.tar.gz. Exit status: dbtorture's (0 clean, 1 an
#       unexpected outcome, 3 harness error, 130 interrupted) — reports are written in every case.
#   ci/nightly.sh merge OUT DIR...
#       Combines the shards' output directories into one report (dbtorture merge).
#
# Seed: $DBTORTURE_SEED, else the date (YYYYMMDD, UTC): every night explores new cycles, every job of one night
# runs the same ones, and a failure is reproduced with the seed printed in its report.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The build links Berkeley DB 5.3 and the rpm/libdb targets need their tools: install what is missing.
ci/deps.sh
cargo build --release --quiet
bin=target/release/dbtorture

cmd=${1:-}
case "$cmd" in
  run)
    [ $# -ge 3 ] || { echo "usage: ci/nightly.sh run SCENARIO OUT [dbtorture run options]" >&2; exit 2; }
    scenario=$2 out=$3
    shift 3
    seed=${DBTORTURE_SEED:-$(date -u +%Y%m%d)}
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
  merge)
    [ $# -ge 3 ] || { echo "usage: ci/nightly.sh merge OUT DIR..." >&2; exit 2; }
    out=$2
    shift 2
    exec "$bin" merge "$@" --out "$out"
    ;;
  *)
    echo "usage: ci/nightly.sh run SCENARIO OUT [options] | merge OUT DIR..." >&2
    exit 2
    ;;
esac
