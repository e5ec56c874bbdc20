#!/usr/bin/env bash
# Fuzz smoke run (docs/fuzzing.md): builds every cargo-fuzz target of fuzz/ and runs each for a
# few seconds from its seeds (fuzz/seeds/<target>/, committed), one target at a time, growing
# fuzz/corpus/<target>/ (ignored by git). One line per target; exits 1 when any target crashed,
# hung or ran out of memory (the input is in fuzz/artifacts/<target>/), 2 when the build failed.
#
# Needs cargo-fuzz and a nightly toolchain (scripts/setup.sh installs cargo-fuzz).
#   FUZZ_SECONDS=N      seconds per target (default 10)
#   FUZZ_TARGETS="a b"  only these targets (default: all of `cargo fuzz list`)
#   CARGO_TARGET_DIR    where to build (default fuzz/target)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds=${FUZZ_SECONDS:-10}
target_dir=${CARGO_TARGET_DIR:-$root/fuzz/target}
logs=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke.XXXXXX")
fuzz=(cargo +nightly fuzz)

cargo fuzz --version >/dev/null 2>&1 || { echo "fuzz-smoke: cargo-fuzz is missing: run scripts/setup.sh" >&2; exit 2; }
cargo +nightly --version >/dev/null 2>&1 || { echo "fuzz-smoke: no nightly toolchain (rustup toolchain install nightly)" >&2; exit 2; }

read -r -a targets <<< "${FUZZ_TARGETS:-$("${fuzz[@]}" list | tr '\n' ' ')}"
# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash too.
if ! "${fuzz[@]}" build -a --target-dir "$target_dir" >"$logs/build.log" 2>&1; then
    tail -n 40 "$logs/build.log" >&2
    echo "fuzz-smoke: build failed (log: $logs/build.log)" >&2
    exit 2
fi

failed=()
for t in "${targets[@]}"; do
    [[ -d fuzz/seeds/$t ]] || { echo "fuzz-smoke: $t has no seeds in fuzz/seeds/$t" >&2; failed+=("$t"); continue; }
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log="$logs/$t.log"
    # New inputs go to the first directory (the corpus); the seeds are only read.
    if "${fuzz[@]}" run -a --target-dir "$target_dir" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        line=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
        cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p' <<< "$line")
        echo "fuzz-smoke: $t ok: ${runs:-?} runs in ${seconds}s, ${cov:-no coverage line}"
    else
        artifact=$(grep -oE "fuzz/artifacts/$t/[^ ]+" "$log" | tail -n 1 || true)
        echo "fuzz-smoke: $t FAILED: ${artifact:-see $log} (log: $log)"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 | sed 's/^/    /'
        failed+=("$t")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz-smoke: ${#failed[@]} of ${#targets[@]} targets failed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} targets, no crash in ${seconds}s each"
