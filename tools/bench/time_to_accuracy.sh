#!/usr/bin/env bash
# Time to accuracy on this CPU: train recipe variants for a fixed wall time, two at a time (one
# per core, one thread each, pinned), then decode every checkpoint of each on dev and
# test-human subsets (tools/wer_curve.py) and draw the curves (tools/plot_progress.py).
#
# Usage (from the repository root, after egs/synth/ASR/prepare.sh):
#   tools/bench/time_to_accuracy.sh MINUTES NAME1 "TRAIN_ARGS1" [NAME2 "TRAIN_ARGS2"]
#   e.g. tools/bench/time_to_accuracy.sh 12 baseline "" ref1 "--ref-duration 1"
#
# Environment: SWEEP_DIR (default egs/synth/ASR/zipformer/exp-sweep), MAX_UTTS (default 100).
# Each variant gets <SWEEP_DIR>/<NAME>/ with its checkpoints, train log and wer-vs-time.tsv.
# The two runs share the machine's memory bandwidth, so compare them with each other (same
# run), not with runs of another day.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RECIPE="$REPO_ROOT/egs/synth/ASR"
SWEEP_DIR="${SWEEP_DIR:-zipformer/exp-sweep}"
MAX_UTTS="${MAX_UTTS:-100}"

if [[ $# -lt 3 || $(($# % 2)) -ne 1 || $# -gt 5 ]]; then
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
  exit 2
fi
minutes=$1
shift
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || [[ "$minutes" -lt 1 ]]; then
  echo "time_to_accuracy.sh: MINUTES must be a positive integer, got '$minutes'" >&2
  exit 2
fi

# shellcheck disable=SC1091
source "${VENV:-$REPO_ROOT/.venv}/bin/activate"
cd "$RECIPE"

names=()
core=0
while [[ $# -gt 0 ]]; do
  name=$1 args=$2
  shift 2
  names+=("$name")
  mkdir -p "$SWEEP_DIR/$name"
  # shellcheck disable=SC2086  # args is a list of flags
  OMP_NUM_THREADS=1 timeout "$((minutes * 60))" taskset -c "$core" \
    python3 ./zipformer/train.py --num-threads 1 --num-epochs 1000 --keep-last-k 1000 \
    --exp-dir "$SWEEP_DIR/$name" $args >"$SWEEP_DIR/$name/train.out" 2>&1 &
  core=$((core + 1))
done
wait || true # timeout ends each run with status 124

for name in "${names[@]}"; do
  python3 "$REPO_ROOT/tools/wer_curve.py" --exp-dir "$SWEEP_DIR/$name" \
    --test-sets dev,test-human --max-utts "$MAX_UTTS" --num-threads 2
done
