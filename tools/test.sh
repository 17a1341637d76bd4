#!/usr/bin/env bash
# The project's test command (CI runs exactly this through .ci/run).
#
# Usage:
#   tools/test.sh                  # set-up, lint, then every test including the slow end-to-end ones
#   tools/test.sh --fast           # same, but deselect tests marked @pytest.mark.slow
#   tools/test.sh --no-setup       # skip tools/setup.sh (the venv is already set up)
#   tools/test.sh --no-lint        # skip black / isort / flake8
#   tools/test.sh -- -k decode -x  # everything after "--" goes to pytest
#
# Lint covers icefall_lite, test, tools and egs with the settings in pyproject.toml / setup.cfg.
# Exit status: 0 when set-up, lint and tests all pass; non-zero otherwise (lint and tests both
# run even if the other fails, so one run shows every problem).
#
# Environment: VENV (default <repo>/.venv), SETUP_ARGS (extra options for tools/setup.sh),
# TEST_WORKERS (pytest-xdist worker processes; default: the number of cores, at most 4; 1 runs
# the tests in one process). Every test runs torch with 1 thread (test/conftest.py) and most
# recipe tests are single-threaded subprocesses, so one process would leave the other cores idle;
# tests of one file share a worker (--dist loadfile) so module fixtures are built once.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO_ROOT/.venv}"
export VENV

fast=0
do_setup=1
do_lint=1
pytest_extra=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --fast) fast=1 ;;
    --no-setup) do_setup=0 ;;
    --no-lint) do_lint=0 ;;
    -h | --help)
      sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//'
      exit 0
      ;;
    --)
      shift
      pytest_extra=("$@")
      break
      ;;
    *)
      echo "test.sh: unknown option '$1' (see tools/test.sh --help)" >&2
      exit 2
      ;;
  esac
  shift
done

if [[ -n "${TEST_WORKERS:-}" && ! "$TEST_WORKERS" =~ ^[1-9][0-9]*$ ]]; then
  echo "test.sh: TEST_WORKERS must be a positive integer, got '$TEST_WORKERS'" >&2
  exit 2
fi

cd "$REPO_ROOT"
t_start=$SECONDS
report=()

if [[ $do_setup -eq 1 ]]; then
  t0=$SECONDS
  # shellcheck disable=SC2086  # SETUP_ARGS is a list of options
  if ! tools/setup.sh ${SETUP_ARGS:-}; then
    echo "test.sh: tools/setup.sh failed; not running lint or tests" >&2
    exit 1
  fi
  report+=("setup   ok     $((SECONDS - t0))s")
fi

PY="$VENV/bin/python"
if [[ ! -x "$PY" ]]; then
  echo "test.sh: no Python at $PY; run tools/setup.sh first (or set VENV)" >&2
  exit 1
fi

lint_rc=0
if [[ $do_lint -eq 1 ]]; then
  t0=$SECONDS
  lint_paths=()
  for d in icefall_lite test tools egs; do
    [[ -d "$d" ]] && lint_paths+=("$d")
  done
  echo "==> lint: black --check, isort --check, flake8 over ${lint_paths[*]}"
  # black and isort skip git-ignored paths (recipe data/exp folders); flake8 uses setup.cfg's exclude.
  "$PY" -m black --check "${lint_paths[@]}" || {
    echo "test.sh: black would reformat the files above; run: $VENV/bin/black ${lint_paths[*]}" >&2
    lint_rc=1
  }
  "$PY" -m isort --check-only --skip-gitignore "${lint_paths[@]}" || {
    echo "test.sh: isort would reorder imports above; run: $VENV/bin/isort ${lint_paths[*]}" >&2
    lint_rc=1
  }
  "$PY" -m flake8 "${lint_paths[@]}" || {
    echo "test.sh: flake8 found the problems above" >&2
    lint_rc=1
  }
  if [[ $lint_rc -eq 0 ]]; then
    report+=("lint    ok     $((SECONDS - t0))s")
  else
    report+=("lint    FAILED $((SECONDS - t0))s")
  fi
fi

t0=$SECONDS
pytest_args=(-q --durations=15)
cores=$(nproc 2>/dev/null || echo 1)
workers=${TEST_WORKERS:-$((cores < 4 ? cores : 4))}
if [[ $workers -gt 1 ]]; then
  if "$PY" -c "import xdist" 2>/dev/null; then
    pytest_args+=(-n "$workers" --dist loadfile)
  else
    # An older venv used with --no-setup: still run every test, in one process.
    echo "test.sh: pytest-xdist is not installed in $VENV (run tools/setup.sh); running in one process" >&2
  fi
fi
if [[ $fast -eq 1 ]]; then
  pytest_args+=(-m "not slow")
fi
echo "==> pytest ${pytest_args[*]} ${pytest_extra[*]}"
set +e
"$PY" -m pytest "${pytest_args[@]}" "${pytest_extra[@]}"
test_rc=$?
set -e
case $test_rc in
  0) report+=("tests   ok     $((SECONDS - t0))s") ;;
  5)
    echo "test.sh: pytest collected no tests (exit code 5); the test suite is missing or all deselected" >&2
    report+=("tests   FAILED $((SECONDS - t0))s (no tests collected)")
    ;;
  *) report+=("tests   FAILED $((SECONDS - t0))s (pytest exit code $test_rc)") ;;
esac

echo ""
echo "test.sh summary ($((SECONDS - t_start))s total):"
for line in "${report[@]}"; do
  echo "  $line"
done
if [[ $lint_rc -ne 0 || $test_rc -ne 0 ]]; then
  exit 1
fi
