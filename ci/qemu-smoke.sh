#!/usr/bin/env bash
# The qemu ARM guest check: build the guest (qemu/build-guest.sh — apt, the armv5te cross build, Debian's
# armel kernel, initramfs, SD template; a ~1 s no-op when nothing changed), boot it and run
# scenarios/qemu-smoke.toml inside it (10 cycles on each backend: sqlite, bdbenv, and libdb — real Berkeley DB
# 5.3, linked into the guest's dbtorture), then scenarios/qemu-rpm.toml (10 cycles of Debian's armel rpm 4.18,
# unpacked into the guest, killed with SIGKILL, SIGTERM and SIGINT), and check each out directory the way any run's is checked. `.ci/run` calls it; `--soak 30m` adds the armv5tel soak by hand (scenarios/qemu-soak.toml,
# memory pressure in the guest's cgroup v2 inside mem=160M) — the nightly's qemu-arm job runs that soak through
# `ci/nightly.sh qemu`.
# Usage: ci/qemu-smoke.sh [--soak DURATION]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
soak=""
if [ "${1:-}" = "--soak" ]; then soak=${2:?--soak needs a duration, e.g. 30m}; fi

qemu/build-guest.sh
cargo build --release -q

check() { # out-dir cycles-expected-or-0
  python3 - "$1" "$2" <<'PY'
import json, sys
out, want = sys.argv[1], int(sys.argv[2])
s = json.load(open(f"{out}/summary.json"))
g = json.load(open(f"{out}/guest.json"))
print(f"{out}: guest {g['exit_reason']}, boot to first cycle {g['boot_to_first_cycle_s']:.1f}s, "
      f"{s['cycles']} cycles, {s['kills']} kills, outcomes {s['outcomes']}, unexpected {s['unexpected']}, "
      f"cycles/min {({b: round(c, 1) for b, c in g['cycles_per_min'].items()})}")
ok = g["exit_reason"] == "completed" and s["unexpected"] == 0 and (want == 0 or s["cycles"] == want)
sys.exit(0 if ok else 1)
PY
}

# Boot + 10 cycles on each of 3 backends (12 cycles took 190 s quiet, 5.6 min on 2 cores at load 9).
target/release/dbtorture qemu --scenario scenarios/qemu-smoke.toml -q --out target/ci-qemu-smoke
check target/ci-qemu-smoke 30
# Boot + 10 cycles of the real armel rpm in the guest (51 s quiet): really killed, really acknowledging, and
# as the oracle every other cycle (a disagreement fails its cycle; here: that it ran, 5 times).
target/release/dbtorture qemu --scenario scenarios/qemu-rpm.toml -q --out target/ci-qemu-rpm
check target/ci-qemu-rpm 10
python3 - target/ci-qemu-rpm <<'PY'
import json, sys
out = sys.argv[1]
s = json.load(open(f"{out}/summary.json"))
evs = [json.loads(l) for l in open(f"{out}/events.jsonl")]
oracle = [e["message"] for e in evs if e.get("event") == "engine-message" and e["message"].startswith("rpm oracle:")]
print(f"{out}: {s['kills']} kills, {s['commits']} acknowledged commits, {len(oracle)} rpm oracle runs")
sys.exit(0 if s["kills"] >= 5 and s["commits"] >= 5 and len(oracle) >= 5 else 1)
PY

if [ -n "$soak" ]; then
  target/release/dbtorture qemu --scenario scenarios/qemu-soak.toml --mem 160M --duration "$soak" -q \
    --out target/ci-qemu-soak
  check target/ci-qemu-soak 0
fi
