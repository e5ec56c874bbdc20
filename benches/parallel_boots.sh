#!/usr/bin/env bash
# Boot time of the healthy fixture when guests share the host: one guest alone, two at once, and
# two at once beside busy loops standing in for a loaded CI runner — each with the profile's
# 2 vCPUs and with 1, side by side in one run. It decides how many boots the tests run at once
# (tests/boot_fixtures.rs, boot_slot) and shows how a loaded runner stretches a TCG boot.
#
# usage: bash benches/parallel_boots.sh            (about 8 minutes on 2 cores)
#        HOGS=4 bash benches/parallel_boots.sh     busy loops in the loaded rows (default: nproc)
# Figures: docs/benchmarks.md ("Parallel boots").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-${TMPDIR:-/tmp}/bootaudit-bench-boots}
hogs=${HOGS:-$(nproc)}
mkdir -p "$work"

cargo build --release -q --manifest-path "$root/Cargo.toml"
bin="$root/target/release/bootaudit"
iso=$(bash "$root/fixtures/build-images.sh" healthy)
sed 's/^  cpus: 2$/  cpus: 1/' "$root/profiles/pre-nixos.yaml" > "$work/one-vcpu.yaml"
grep -q '^  cpus: 1$' "$work/one-vcpu.yaml" || { echo "no cpus: line in the profile" >&2; exit 1; }

# row PROFILE VCPUS GUESTS HOGS: boots GUESTS guests at once (beside HOGS busy loops) and
# prints one line per guest: exit code, boot.login seconds, whole run seconds.
row() {
  local profile=$1 vcpus=$2 guests=$3 nhogs=$4 hog_pids=() run_pids=() i start
  for ((i = 0; i < nhogs; i++)); do (while :; do :; done) & hog_pids+=($!); done
  start=$(date +%s.%N)
  for ((i = 1; i <= guests; i++)); do
    "$bin" run --iso "$iso" --profile "$profile" --out "$work/out-$vcpus-$guests-$nhogs-$i" \
      --format json > "$work/r-$i.json" 2>/dev/null &
    run_pids+=($!)
  done
  for i in "${!run_pids[@]}"; do
    local code=0
    wait "${run_pids[$i]}" || code=$?
    python3 - "$work/r-$((i + 1)).json" "$vcpus" "$guests" "$nhogs" "$code" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
login = next(c for c in r["conditions"] if c["id"] == "boot.login")
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} "
      f"| {login['duration_ms'] / 1000:.1f} | {r['duration_ms'] / 1000:.1f} |")
PY
  done
  ((nhogs == 0)) || kill "${hog_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  printf '|   |   |   | all %d done in | | %.1f |\n' "$guests" "$(echo "$(date +%s.%N) - $start" | bc)"
}

echo "| vCPUs | guests at once | busy loops | exit | boot.login s | run s |"
echo "|---|---|---|---|---|---|"
row "$root/profiles/pre-nixos.yaml" 2 1 0
row "$work/one-vcpu.yaml" 1 1 0
row "$root/profiles/pre-nixos.yaml" 2 2 0
row "$work/one-vcpu.yaml" 1 2 0
row "$root/profiles/pre-nixos.yaml" 2 2 "$hogs"
row "$work/one-vcpu.yaml" 1 2 "$hogs"
