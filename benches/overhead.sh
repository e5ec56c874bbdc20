#!/usr/bin/env bash
# Audit overhead: bootaudit against a naive pexpect prober (benches/pexpect_baseline.py) on the
# same fixtures, side by side in one interleaved session — one boot at a time, the order of the
# two tools alternating (ABBA) from one round to the next and from one fixture to the next, each
# run in a fresh temp folder removed afterwards. Prints a Markdown table per fixture (median and
# min–max of each figure), the wall-time ratio bootaudit/baseline and whether the verdicts agree.
#
# usage: bash benches/overhead.sh              (~50 min on 2 cores under TCG: ~16 min a round, most
#                                             of it the baseline waiting out its timeouts on
#                                             no-dhcp, lan-unmanaged, unit-remains-active)
#        ROUNDS=1 FIXTURES="healthy kernel-panic" bash benches/overhead.sh
#        BIN=/tmp/tgt/release/bootaudit bash benches/overhead.sh
# Environment: ROUNDS (3), FIXTURES (healthy flood kernel-panic no-dhcp lan-unmanaged
# unit-remains-active), BIN (target/release/bootaudit, built if missing), RESULTS (where the
# per-run JSON lines are kept; default /tmp/bootaudit-overhead.jsonl), KEEP (a folder: keep each
# run's folder there — report, serial.raw — instead of removing it).
# Figures: docs/benchmarks.md ("Audit overhead against a pexpect baseline").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${ROUNDS:-3}
fixtures=(${FIXTURES:-healthy flood kernel-panic no-dhcp lan-unmanaged unit-remains-active})
bin=${BIN:-target/release/bootaudit}
results=${RESULTS:-/tmp/bootaudit-overhead.jsonl}
if [[ ! -x $bin ]]; then
  [[ $bin == target/release/bootaudit ]] || { echo "no binary at $bin" >&2; exit 2; }
  cargo build --release -q
fi
python3 -c 'import pexpect' || { echo "needs python3-pexpect" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/bootaudit-overhead.XXXXXX")

# Every QEMU of this bench has $work in its command line (bootaudit's own temp folder is put
# under it with TMPDIR, the baseline's disk lives there): kill only those, by pid.
cleanup() {
  local pid
  for pid in $(pgrep -f -- "qemu-system.*$work" || true); do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

present=()
for f in "${fixtures[@]}"; do
  if [[ -f fixtures/out/$f.iso ]]; then present+=("$f")
  else echo "note: fixtures/out/$f.iso is missing, $f skipped (fixtures/build-images.sh $f)" >&2; fi
done
((${#present[@]})) || { echo "no fixture ISO to run" >&2; exit 2; }
: > "$results"

now() { date +%s.%N; }
# QEMUs of others (not under $work) and the 1-minute load: other guests on 2 cores slow a TCG boot.
host_state() { echo "$(pgrep qemu-system | while read -r p; do grep -qF "$work" /proc/$p/cmdline 2>/dev/null || echo; done | wc -l) $(cut -d' ' -f1 /proc/loadavg)"; }
done_with() {  # DIR FIXTURE ROUND
  if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP"; mv "$1" "$KEEP/$2-$3-$(basename "$1")"
  else rm -rf "$1"; fi
}

# run_bootaudit FIXTURE ROUND ORDER: one audit, its figures as one JSON line in $results.
run_bootaudit() {
  local dir code=0 t0 t1
  dir=$(mktemp -d "$work/bootaudit.XXXXXX")
  local h0=$(host_state)
  t0=$(now)
  TMPDIR=$dir "$bin" run --iso "fixtures/out/$1.iso" --out "$dir/out" --format json \
    > "$dir/stdout.json" 2> "$dir/stderr.log" || code=$?
  t1=$(now)
  python3 - "$dir/out" "$1" "$2" "$3" "$t0" "$t1" "$code" "$h0 $(host_state)" >> "$results" <<'PY'
import json, os, sys
out, fixture, rnd, order, t0, t1, code, host = sys.argv[1:]
wall = float(t1) - float(t0)
rec = {"tool": "bootaudit", "fixture": fixture, "round": int(rnd), "order": int(order), "exit": int(code),
       "host": host.split(), "wall": wall, "startup": None, "qemu_start": None, "login": None, "end": None,
       "after_login": None, "shell": None, "panic_delay": None, "verdicts": {}, "durations": {}}
try:
    r = json.load(open(f"{out}/report.json"))
except (OSError, ValueError):                     # no report (exit 2/3): a record with no figures
    print(json.dumps(rec))
    sys.exit()
cs = {c["id"]: c for c in r["conditions"]}
ms = lambda c: (c["started_ms"] + c["duration_ms"]) / 1000
startup = wall - r["duration_ms"] / 1000          # process start-up and exit, outside the run clock
login = ms(cs["boot.login"]) + startup if cs["boot.login"]["status"] == "pass" else None
end = r["duration_ms"] / 1000 + startup
panic = None
raw = open(f"{out}/serial.raw", "rb").read() if os.path.exists(f"{out}/serial.raw") else b""
at = raw.find(b"---[ end Kernel panic")
failed = [c for c in r["conditions"] if c["status"] == "fail" and "Kernel panic" in c.get("message", "")]
if at >= 0 and failed:
    arrived = None
    for line in open(f"{out}/serial.timing"):
        off, t = map(int, line.split())
        if off > at:
            break
        arrived = t
    panic = (min(ms(c) for c in failed) * 1000 - arrived) / 1000
boot = [c for c in r["conditions"] if c["id"].split(".")[0] in ("boot", "shell", "storage", "net", "unit", "console")]
rec.update({
    "startup": startup, "qemu_start": cs["boot.console"]["started_ms"] / 1000 + startup,
    "login": login, "end": end, "after_login": end - login if login is not None else None,
    "shell": cs["shell.ready"]["duration_ms"] / 1000 if cs["shell.ready"]["status"] == "pass" else None,
    "panic_delay": panic,
    "verdicts": {c["id"]: c["status"] for c in boot},
    "durations": {c["id"]: c["duration_ms"] / 1000 for c in boot},
})
print(json.dumps(rec))
PY
  done_with "$dir" "$1" "$2"
}

# run_baseline FIXTURE ROUND ORDER: one run of the pexpect prober, the same figures.
run_baseline() {
  local dir code=0 t0 t1
  dir=$(mktemp -d "$work/baseline.XXXXXX")
  local h0=$(host_state)
  t0=$(now)
  python3 benches/pexpect_baseline.py "fixtures/out/$1.iso" "$dir" > "$dir/out.json" \
    2> "$dir/stderr.log" || code=$?
  t1=$(now)
  python3 - "$dir/out.json" "$1" "$2" "$3" "$t0" "$t1" "$code" "$h0 $(host_state)" >> "$results" <<'PY'
import json, sys
path, fixture, rnd, order, t0, t1, code, host = sys.argv[1:]
try:
    b = json.load(open(path))
except ValueError:                                # it crashed: a record with no figures
    b = {"t0_epoch": float(t0), "t_qemu_start": None, "t_login": None, "t_end": None,
         "t_shell_ready": None, "panic_end_delay": None, "verdicts": {}, "durations": {}}
startup = b["t0_epoch"] - float(t0)               # interpreter and import, before its clock
shift = lambda v: None if v is None else v + startup
print(json.dumps({
    "tool": "baseline", "fixture": fixture, "round": int(rnd), "order": int(order), "exit": int(code), "host": host.split(),
    "wall": float(t1) - float(t0), "startup": startup, "qemu_start": shift(b["t_qemu_start"]),
    "login": shift(b["t_login"]), "end": shift(b["t_end"]),
    "after_login": b["t_end"] - b["t_login"] if b["t_login"] is not None and b["t_end"] is not None else None,
    "shell": b["t_shell_ready"] if b["verdicts"].get("shell.ready") == "pass" else None,
    "panic_delay": b["panic_end_delay"],
    "verdicts": b["verdicts"], "durations": b["durations"],
}))
PY
  [[ -s $dir/out.json ]] || { echo "baseline failed on $1:" >&2; cat "$dir/stderr.log" >&2; }
  done_with "$dir" "$1" "$2"
}

for ((r = 1; r <= rounds; r++)); do
  for i in "${!present[@]}"; do
    f=${present[$i]}
    if (((r + i) % 2)); then order=(bootaudit baseline); else order=(baseline bootaudit); fi
    for k in 0 1; do
      echo "round $r/$rounds, $f: ${order[$k]} ($((k + 1)) of 2)" >&2
      "run_${order[$k]}" "$f" "$r" "$((k + 1))"
    done
  done
done

python3 - "$results" "$rounds" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
rounds = sys.argv[2]
FIGURES = [
    ("qemu_start", "QEMU spawned (s from launch)"),
    ("login", "login prompt / automatic login (s from launch)"),
    ("boot", "QEMU spawned → login (s)"),
    ("end", "last verdict (s from launch)"),
    ("after_login", "audit after login (s)"),
    ("shell", "shell take-over (s)"),
    ("panic_delay", "panic verdict − `---[ end Kernel panic` arrival (s)"),
    ("wall", "wall time of the command (s)"),
]
def cell(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    m = statistics.median(vals)
    return f"{m:.2f}" if len(vals) == 1 else f"{m:.2f} ({min(vals):.2f}–{max(vals):.2f})"
for r in runs:
    r["boot"] = r["login"] - r["qemu_start"] if r["login"] is not None else None
for fixture in dict.fromkeys(r["fixture"] for r in runs):
    ours = [r for r in runs if r["fixture"] == fixture and r["tool"] == "bootaudit"]
    base = [r for r in runs if r["fixture"] == fixture and r["tool"] == "baseline"]
    print(f"\n### {fixture} ({len(ours)} + {len(base)} runs, {rounds} rounds)\n")
    print("| figure | bootaudit | pexpect baseline |\n|---|---:|---:|")
    for key, label in FIGURES:
        a, b = cell(r[key] for r in ours), cell(r[key] for r in base)
        if a != "—" or b != "—":
            print(f"| {label} | {a} | {b} |")
    wa = statistics.median(r["wall"] for r in ours)
    wb = statistics.median(r["wall"] for r in base)
    per_round = ", ".join(f"{a['wall'] / b['wall']:.2f}" for a, b in zip(ours, base))
    print(f"\nwall time bootaudit / baseline: **{wa / wb:.2f}** (median over median; per round: {per_round})")
    print("exit codes: bootaudit " + " ".join(str(r["exit"]) for r in ours)
          + ", baseline " + " ".join(str(r["exit"]) for r in base))
    # Per-condition durations after the login, median s: where the time goes.
    if any(r["verdicts"].get("shell.ready") == "pass" for r in ours + base):
        ids = [i for i in max((r["durations"] for r in ours + base), key=len) if i not in ("boot.console", "boot.login", "boot.autologin")]
        med = lambda rs, i: cell(r["durations"].get(i) for r in rs)
        print("\nper condition after the login, s (bootaudit / baseline): "
              + "; ".join(f"{i} {med(ours, i)} / {med(base, i)}" for i in ids))
    print("\nhost (other QEMUs at start/end, 1-min load at start/end): "
          + " | ".join(f"round {r['round']} {r['tool']} {r['host'][0]}/{r['host'][2]}, {r['host'][1]}/{r['host'][3]}"
                       for r in sorted(ours + base, key=lambda r: (r["round"], r["order"]))))
    lines = []
    for a, b in zip(ours, base):
        shared = [i for i in a["verdicts"] if i in b["verdicts"]]
        judged = [i for i in shared if {a["verdicts"][i], b["verdicts"][i]} <= {"pass", "fail"}]
        differ = [f"{i} (bootaudit {a['verdicts'][i]}, baseline {b['verdicts'][i]})"
                  for i in judged if a["verdicts"][i] != b["verdicts"][i]]
        other = [f"{i} ({a['verdicts'][i]} / {b['verdicts'][i]})" for i in shared if i not in judged]
        lines.append(f"round {a['round']}: " + ("**differ** on " + ", ".join(differ) if differ
                     else f"the same on all {len(judged)} conditions both judged")
                     + (f"; judged by one tool only: {', '.join(other)}" if other else ""))
    print("\nverdicts (pass/fail): " + " | ".join(lines))
PY
