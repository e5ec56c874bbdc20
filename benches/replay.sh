#!/usr/bin/env bash
# Replay speed and peak memory on synthetic foreign logs of growing size, side by side in one run
# with two baselines: `wc -l` (just reading the file: the floor) and bootaudit at $BASELINE_REV,
# the last commit before replay streamed (it read the whole log into memory).
#
# usage: bash benches/replay.sh [SIZE_MB ...]        default: 10 100 1024
#        BASELINE_REV=<rev> BENCH_DIR=<dir> bash benches/replay.sh 100
# Figures and how to read them: docs/benchmarks.md ("Replay").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-${TMPDIR:-/tmp}/bootaudit-bench-replay}
baseline_rev=${BASELINE_REV:-22e9a99}
limit=${LIMIT_S:-900}
[ $# -gt 0 ] || set -- 10 100 1024
mkdir -p "$work"

cargo build --release -q --manifest-path "$root/Cargo.toml"
new="$root/target/release/bootaudit"
old="$work/baseline-$baseline_rev/target/release/bootaudit"
if [ ! -x "$old" ]; then
  echo "building the baseline ($baseline_rev) once into $work ..." >&2
  rm -rf "$work/baseline-$baseline_rev" && mkdir -p "$work/baseline-$baseline_rev"
  git -C "$root" archive "$baseline_rev" | tar -x -C "$work/baseline-$baseline_rev"
  (cd "$work/baseline-$baseline_rev" && cargo build --release -q)
fi

# verdicts in a report: "pass/fail/skip" counts of the boot conditions
verdicts() {
  python3 -c 'import json,sys
r=json.load(open(sys.argv[1])); c=[x["status"] for x in r["conditions"]]
print("%d/%d/%d" % (c.count("pass"), c.count("fail"), c.count("skip")))' "$1" 2>/dev/null || echo "-"
}

run() { # label size log cmd...
  local label=$1 size=$2 log=$3; shift 3
  rm -rf "$work/out"
  if timeout "$limit" /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>&1; then :; fi
  local secs kib bytes
  read -r secs kib < <(tail -n 1 "$work/time")
  bytes=$(stat -c %s "$log")
  awk -v l="$label" -v s="$size" -v t="$secs" -v k="$kib" -v b="$bytes" -v v="$(
      [ -f "$work/out/report.json" ] && verdicts "$work/out/report.json" || echo -)" \
    'BEGIN { printf "| %-20s | %6s | %8.1f | %9.1f | %8.1f | %-9s |\n", l, s, t, k / 1024, b / 1048576 / (t + 0.001), v }'
}

echo "| what                 | log MB | wall s   | peak MiB  | MB/s     | p/f/s     |"
echo "|----------------------|--------|----------|-----------|----------|-----------|"
for mb in "$@"; do
  log="$work/foreign-$mb.log"
  [ -f "$log" ] || python3 "$root/benches/gen_foreign_log.py" "$mb" "$log"
  run "wc -l (floor)" "$mb" "$log" wc -l "$log"
  run "replay (streaming)" "$mb" "$log" "$new" replay "$log" --out "$work/out"
  run "replay @$baseline_rev" "$mb" "$log" "$old" replay "$log" --out "$work/out"
done
