#!/usr/bin/env bash
# One 2-thread training process or two 1-thread DDP ranks? Times the synth recipe's real
# ./zipformer/train.py (its data, its defaults) for a fixed wall time in both layouts, alone
# and beside one competing single-threaded process, and prints seconds per optimizer step of
# 30 s of audio (the same audio per update in both: the ranks get half the batch each).
#
# Usage (from the repository root, after ./prepare.sh in egs/synth/ASR, on an idle machine):
#   tools/bench/train_layout.sh [SECONDS]    # default 150 s of training per configuration
#
# Each run starts a fresh exp dir under $TMPDIR; the first 40 steps (start-up, warm-up, the
# first checkpoint) are left out: seconds per step are taken between the log line of step 40
# and the last one logged. The competitor is the numpy matrix-multiply loop of
# tools/bench/competitor.sh (shared with thread_share.sh). Fair share beside one competitor
# on 2 cores is 2/3 of the machine: a layout that keeps it should run at about 1.5x its time
# alone, not many times slower.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${VENV:-$REPO_ROOT/.venv}/bin/python"
SECONDS_PER_RUN="${1:-150}"
RECIPE="$REPO_ROOT/egs/synth/ASR"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/train_layout.XXXXXX")"
trap 'stop_competitor; rm -rf "$WORK"' EXIT

# shellcheck source=tools/bench/competitor.sh
source "$REPO_ROOT/tools/bench/competitor.sh"

# seconds_per_step LOG: (time of the last step line - time of step 40) / steps between.
seconds_per_step() {
  "$PY" - "$1" <<'EOF'
import re, sys
from datetime import datetime
rows = []
for line in open(sys.argv[1]):
    m = re.match(r"(\S+ \S+),\d+ INFO .*Epoch \d+, step (\d+),", line)
    if m:
        rows.append((datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S"), int(m.group(2))))
rows = [r for r in rows if r[1] >= 40]
if len(rows) < 2:
    sys.exit(f"{sys.argv[1]}: fewer than 2 logged steps after step 40; run longer")
(t0, s0), (t1, s1) = rows[0], rows[-1]
print(f"{(t1 - t0).total_seconds() / (s1 - s0):.3f} s/step over steps {s0}-{s1}")
EOF
}

# run LABEL LAYOUT: LAYOUT "1x2" (one process, 2 threads, train.py's own wait policy choice)
# or "2x1" (two DDP ranks of one thread, --global-batch-size 30).
run() {
  local label=$1 layout=$2 exp="$WORK/exp-$RANDOM" args
  if [[ "$layout" == 1x2 ]]; then
    args=(--world-size 1 --num-threads 2 --max-duration 30)
  else
    args=(--world-size 2 --num-threads 1 --global-batch-size 30)
  fi
  (cd "$RECIPE" && timeout "$SECONDS_PER_RUN" "$PY" ./zipformer/train.py --exp-dir "$exp" \
    "${args[@]}" >"$exp.out" 2>&1) || true
  local log
  log="$(ls "$exp"/log/log-train-* | head -1)"
  printf '| %-22s | %-28s | %s |\n' "$label" "$layout: ${args[*]}" "$(seconds_per_step "$log")"
}

echo "| machine state          | layout                       | speed |"
echo "| --- | --- | --- |"
run "alone" 1x2
run "alone" 2x1
start_competitor
run "beside 1 busy process" 1x2
run "beside 1 busy process" 2x1
stop_competitor
