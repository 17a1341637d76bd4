# shellcheck shell=bash
# The competing process of the sharing benchmarks (thread_share.sh, train_layout.sh): a
# single-threaded numpy matrix-multiply loop, what "a benchmark on the other core" looks like
# to the scheduler. Source it after setting PY (the venv's python).

competitor_pid=""
start_competitor() {
  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -c '
import numpy as np
a = np.random.rand(400, 400)
while True:
    a = (a @ a) / 400.0
' &
  competitor_pid=$!
  sleep 1
}
stop_competitor() {
  if [[ -n "$competitor_pid" ]]; then
    kill "$competitor_pid" 2>/dev/null || true
    wait "$competitor_pid" 2>/dev/null || true
  fi
  competitor_pid=""
}
