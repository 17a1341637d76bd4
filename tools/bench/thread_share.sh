#!/usr/bin/env bash
# Does a training job keep its fair share of a shared CPU? Times the synth recipe's training step
# (tools/bench/train_step.py) alone and beside a competing single-threaded process, with
# OpenMP's wait policy left at libgomp's default (threads spin before they sleep) and PASSIVE
# (threads sleep at once), at 1 and 2 threads; and "auto", what train.py does
# (icefall_lite.threads: PASSIVE only when other processes are busy at start).
#
# Usage (from the repository root, on an otherwise idle machine):
#   tools/bench/thread_share.sh [STEPS]      # default 8 timed steps per configuration
#
# The competitor is a single-threaded numpy matrix-multiply loop (what "a benchmark on the other
# core" looks like to the scheduler). Fair share: beside one competitor on 2 cores, the job
# should run about as fast as with 1 thread alone, not many times slower.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${VENV:-$REPO_ROOT/.venv}/bin/python"
STEPS="${1:-8}"
STEP_ARGS=(--steps "$STEPS" --warmup 2 --batch 8 --seconds 4.0)

# shellcheck source=tools/bench/competitor.sh
source "$REPO_ROOT/tools/bench/competitor.sh"
trap stop_competitor EXIT

# run LABEL POLICY THREADS: one train_step.py measurement; POLICY "default" leaves it unset.
run() {
  local label=$1 policy=$2 threads=$3 line
  # An empty OMP_WAIT_POLICY is libgomp's default (spin a while, then sleep); icefall_lite
  # only fills in PASSIVE when the variable is not set at all.
  # "auto" is what train.py does: icefall_lite.threads.choose_omp_wait_policy() before torch.
  if [[ "$policy" == auto ]]; then
    line="$(env -u OMP_WAIT_POLICY "$PY" -c '
import runpy, sys
from icefall_lite.threads import choose_omp_wait_policy
print(choose_omp_wait_policy(), file=sys.stderr)
sys.argv = ["train_step.py"] + sys.argv[1:]
runpy.run_path("'"$REPO_ROOT"'/tools/bench/train_step.py", run_name="__main__")
' --threads "$threads" "${STEP_ARGS[@]}" 2>/dev/null | tail -1)"
    printf '| %-22s | %-8s | %7s | %s
' "$label" "$policy" "$threads" "$line"
    return
  fi
  local value=$policy
  [[ "$policy" == default ]] && value=""
  line="$(OMP_WAIT_POLICY=$value "$PY" "$REPO_ROOT/tools/bench/train_step.py" \
    --threads "$threads" "${STEP_ARGS[@]}" 2>/dev/null | tail -1)"
  printf '| %-22s | %-8s | %7s | %s\n' "$label" "$policy" "$threads" "$line"
}

echo "| machine state          | OMP_WAIT_POLICY | threads | train_step.py output (ms/step, x real time)"
for policy in default PASSIVE; do
  run "alone" "$policy" 1
  run "alone" "$policy" 2
done
run "alone" auto 2
start_competitor
for policy in default PASSIVE; do
  run "beside 1 busy process" "$policy" 1
  run "beside 1 busy process" "$policy" 2
done
run "beside 1 busy process" auto 2
stop_competitor
