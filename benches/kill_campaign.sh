#!/usr/bin/env bash
# The long kill campaign: RUNS audits of the healthy fixture (default 60), each hit at a random
# moment of its real boot — SIGINT, SIGTERM or SIGKILL to bootaudit, SIGKILL or SIGTERM to its
# QEMU, or SIGABRT to QEMU (a crash) — then checked: no process left, every report written
# valid, exit codes as SPEC says, each SIGKILLed run's leftovers reaped (and reported) by the
# next run, and nothing left in TMPDIR nor in the state folder after `bootaudit clean`.
# It is the suite's kill test (tests/boot_fixtures.rs, kill_campaign_leaves_nothing_behind)
# with more runs; SEED replays a campaign.
#
# usage: bash benches/kill_campaign.sh            (about 7 s a run under TCG on 2 cores)
#        RUNS=120 SEED=42 bash benches/kill_campaign.sh
# Figures: docs/benchmarks.md ("Kill campaign").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/fixtures/build-images.sh" healthy > /dev/null
export KILL_CAMPAIGN_RUNS=${RUNS:-60}
if [ -n "${SEED:-}" ]; then export KILL_CAMPAIGN_SEED=$SEED; fi
cd "$root"
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test -q --test boot_fixtures kill_campaign_leaves_nothing_behind -- --exact --nocapture \
  > "$log" 2>&1 || status=$?
grep -E '^(kill campaign|run [0-9]+:|  [A-Z]|test result|seed|thread|  left)' "$log" || cat "$log"
echo "campaign took $(( $(date +%s) - start )) s"
exit "$status"
