#!/usr/bin/env bash
# Instruction counts (callgrind) for the console benchmarks: repeatable on a busy machine where
# wall-clock figures are not. Counts only the measured functions (`measured`, `expect_*`), not
# the input generator. Usage, from the repository root:
#   bash crates/bootaudit-console/benches/callgrind.sh            # normaliser + expect tables
#   MB=4 bash crates/bootaudit-console/benches/callgrind.sh norm   # only the normaliser table
set -euo pipefail
cd "$(dirname "$0")/../../.."
MB="${MB:-2}"
what="${1:-all}"
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 1; }
bin=$(cargo bench -p bootaudit-console --bench console --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "bench binary not found"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ir CASE MB -> instruction count of the measured part
ir() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" --collect-atstart=no \
        --toggle-collect='*measured*' --toggle-collect='*expect_ours*' \
        --toggle-collect='*expect_naive*' --toggle-collect='*expect_engine*' \
        "$bin" --case "$1" --mb "$2" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

if [ "$what" = all ] || [ "$what" = norm ]; then
    echo "## Normaliser, instructions per input byte ($MB MB, callgrind)"
    echo
    echo "| profile | chunk | ours: Normalizer | strip-ansi-escapes 0.2 | vte 0.14 → String |"
    echo "|---|---:|---:|---:|---:|"
    for profile in boot flood; do
        for chunk in 1 64 4096; do
            row="| $profile | $chunk |"
            for imp in ours strip vte; do
                n=$(ir "norm:$imp:$profile:$chunk" "$MB")
                row="$row $(awk -v n="$n" -v b="$MB" 'BEGIN{printf "%.1f", n/(b*1e6)}') |"
            done
            echo "$row"
        done
    done
    echo
fi
if [ "$what" = all ] || [ "$what" = expect ]; then
    echo "## Expect, marker after N MB of flood: million instructions (callgrind)"
    echo
    echo "| N MB | delivery | ours: Transcript + RESCAN_WINDOW | ours: Console engine | naive: whole buffer per chunk |"
    echo "|---:|---|---:|---:|---:|"
    for delivery in lines 4096; do
        for n in 0.25 0.5 1 2; do
            row="| $n | $delivery |"
            for imp in ours engine naive; do
                # Naive on line-sized reads is quadratic: stop before it takes minutes.
                if [ "$imp" = naive ] && [ "$delivery" = lines ] && [ "$n" = 2 ]; then
                    row="$row skipped |"
                    continue
                fi
                c=$(ir "expect:$imp:$delivery:$n" 1)
                row="$row $(awk -v n="$c" 'BEGIN{printf "%.0f", n/1e6}') |"
            done
            echo "$row"
        done
    done
fi
