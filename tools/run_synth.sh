#!/usr/bin/env bash
# The main job: set up, then run the synth recipe (egs/synth/ASR) end to end and print its WERs.
#
# Usage:
#   tools/run_synth.sh                          # all stages
#   tools/run_synth.sh --stage 2 --stop-stage 3 # only train and decode
#   tools/run_synth.sh --num-epochs 5 --avg 2 --world-size 1 --max-duration 300
#
# Stages:
#   0 setup     tools/setup.sh (venv, requirements, kaldifeat / fast_rnnt, icefall_lite)
#   1 prepare   cd egs/synth/ASR && ./prepare.sh     (corpus, fbank, BPE)
#   2 train     ./zipformer/train.py                  (checkpoints in zipformer/exp)
#   3 decode    ./zipformer/decode.py --decoding-method greedy_search
#   4 export    ./zipformer/export.py --jit 1
#   5 results   the WER table from zipformer/exp/greedy_search/wer-summary-*.txt
#
# Options:
#   --stage N / --stop-stage N   first / last stage to run (default 0 / 5)
#   --num-epochs N               epochs to train (default: train.py's own default)
#   --avg N                      checkpoints to average for decode/export (default 2; lowered
#                                automatically when fewer epochs exist)
#   --world-size N               training processes (default 1)
#   --max-duration S             seconds of audio per batch (default: the recipe's own default)
#   --exp-dir DIR                experiment folder, relative to egs/synth/ASR (default zipformer/exp)
# Environment: VENV (default <repo>/.venv); SETUP_ARGS, PREPARE_ARGS, TRAIN_ARGS, DECODE_ARGS,
# EXPORT_ARGS add options to the matching stage.
#
# A stage whose script does not exist yet is reported ("stage N not available yet: <path> missing")
# and skipped; a stage that exists and fails stops the job with a non-zero exit code.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE="$REPO_ROOT/egs/synth/ASR"
VENV="${VENV:-$REPO_ROOT/.venv}"
export VENV

stage=0
stop_stage=5
num_epochs=""
avg=2
world_size=1
max_duration=""
exp_dir="zipformer/exp"

need_value() {
  if [[ $# -lt 2 || -z "$2" ]]; then
    echo "run_synth.sh: option $1 needs a value (see tools/run_synth.sh --help)" >&2
    exit 2
  fi
}
need_int() {
  if ! [[ "$2" =~ ^[0-9]+$ ]]; then
    echo "run_synth.sh: option $1 expects a non-negative integer, got '$2'" >&2
    exit 2
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage | --stop-stage | --num-epochs | --avg | --world-size)
      need_value "$@"
      need_int "$1" "$2"
      case "$1" in
        --stage) stage=$2 ;;
        --stop-stage) stop_stage=$2 ;;
        --num-epochs) num_epochs=$2 ;;
        --avg) avg=$2 ;;
        --world-size) world_size=$2 ;;
      esac
      shift
      ;;
    --max-duration)
      need_value "$@"
      max_duration=$2
      shift
      ;;
    --exp-dir)
      need_value "$@"
      exp_dir=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "run_synth.sh: unknown option '$1' (see tools/run_synth.sh --help)" >&2
      exit 2
      ;;
  esac
  shift
done

t_start=$SECONDS
summary=()
current=""

on_error() {
  local rc=$?
  echo "" >&2
  echo "run_synth.sh: FAILED in stage '$current' (exit code $rc); see the messages above." >&2
  print_summary >&2
  exit "$rc"
}

print_summary() {
  echo "run_synth.sh summary ($((SECONDS - t_start))s total):"
  local line
  for line in "${summary[@]}"; do
    echo "  $line"
  done
}

# stage_wanted N: is stage N inside --stage .. --stop-stage?
stage_wanted() { [[ $1 -ge $stage && $1 -le $stop_stage ]]; }

# run_stage N NAME FUNCTION: runs FUNCTION, times it, records how it went.
run_stage() {
  local n=$1 name=$2 fn=$3
  stage_wanted "$n" || return 0
  current="$n $name"
  echo ""
  echo "==> stage $n: $name"
  stage_note=""
  local t0=$SECONDS
  "$fn"
  summary+=("$(printf 'stage %d %-8s %5ds  %s' "$n" "$name" $((SECONDS - t0)) "${stage_note:-done}")")
}

# missing PATH: reports a stage whose script has not been written yet.
missing() {
  echo "stage $current not available yet: ${1#"$REPO_ROOT"/} missing"
  stage_note="not available yet: ${1#"$REPO_ROOT"/} missing"
}

# Prints and runs a command inside the recipe folder.
in_recipe() {
  echo "    (cd egs/synth/ASR && $*)"
  (cd "$RECIPE" && "$@")
}

# Latest epoch-N.pt in the experiment folder, empty when none.
latest_epoch() {
  local f n best=""
  for f in "$RECIPE/$exp_dir"/epoch-*.pt; do
    [[ -e "$f" ]] || continue
    n="${f##*/epoch-}"
    n="${n%.pt}"
    [[ "$n" =~ ^[0-9]+$ ]] || continue
    if [[ -z "$best" || $n -gt $best ]]; then best=$n; fi
  done
  echo "$best"
}

# Sets epoch_avg_args to "--epoch E --avg A" for the newest epoch. With the running-average
# model (icefall's default), averaging needs A < E; a single epoch is used as it is.
choose_epoch_avg() {
  local e
  e="$(latest_epoch)"
  if [[ -z "$e" ]]; then
    return 1
  fi
  local a=$avg
  if [[ $a -ge $e ]]; then a=$((e - 1)); fi
  if [[ $a -lt 1 ]]; then
    epoch_avg_args=(--epoch "$e" --avg 1 --use-averaged-model 0)
  else
    epoch_avg_args=(--epoch "$e" --avg "$a")
  fi
}

do_setup() {
  # shellcheck disable=SC2086  # SETUP_ARGS is a list of options
  "$REPO_ROOT/tools/setup.sh" ${SETUP_ARGS:-}
}

do_prepare() {
  local script="$RECIPE/prepare.sh"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  # shellcheck disable=SC2086
  in_recipe bash ./prepare.sh ${PREPARE_ARGS:-}
}

do_train() {
  local script="$RECIPE/zipformer/train.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  local args=(--world-size "$world_size" --exp-dir "$exp_dir")
  [[ -n "$num_epochs" ]] && args+=(--num-epochs "$num_epochs")
  [[ -n "$max_duration" ]] && args+=(--max-duration "$max_duration")
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/train.py "${args[@]}" ${TRAIN_ARGS:-}
}

do_decode() {
  local script="$RECIPE/zipformer/decode.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  if ! choose_epoch_avg; then
    echo "stage $current skipped: no epoch-*.pt in egs/synth/ASR/$exp_dir (train first)"
    stage_note="skipped: no checkpoints in $exp_dir"
    return 0
  fi
  local args=("${epoch_avg_args[@]}" --exp-dir "$exp_dir" --decoding-method greedy_search)
  [[ -n "$max_duration" ]] && args+=(--max-duration "$max_duration")
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/decode.py "${args[@]}" ${DECODE_ARGS:-}
}

do_export() {
  local script="$RECIPE/zipformer/export.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  if ! choose_epoch_avg; then
    echo "stage $current skipped: no epoch-*.pt in egs/synth/ASR/$exp_dir (train first)"
    stage_note="skipped: no checkpoints in $exp_dir"
    return 0
  fi
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/export.py "${epoch_avg_args[@]}" --exp-dir "$exp_dir" --jit 1 \
    ${EXPORT_ARGS:-}
}

do_results() {
  local dir="$RECIPE/$exp_dir/greedy_search" f found=0
  echo "WER (greedy_search), from egs/synth/ASR/$exp_dir/greedy_search/wer-summary-*.txt:"
  for f in "$dir"/wer-summary-*.txt; do
    [[ -e "$f" ]] || continue
    found=1
    # icefall's layout: a "settings<TAB>WER" header, then one "<settings><TAB><wer>" line each.
    local name="${f##*/wer-summary-}"
    name="${name%.txt}"
    echo "  == $name"
    sed -e 's/^/     /' "$f"
  done
  if [[ $found -eq 0 ]]; then
    echo "  (none yet: decode has not written any wer-summary-*.txt)"
    stage_note="no WER files yet"
  else
    stage_note="printed $(compgen -G "$dir/wer-summary-*.txt" | wc -l) WER file(s)"
  fi
}

trap on_error ERR
set -o errtrace

if stage_wanted 0; then
  run_stage 0 setup do_setup
fi
if [[ -x "$VENV/bin/python" ]]; then
  # The recipe scripts run with "python3" and expect the project's environment.
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
else
  echo "run_synth.sh: no virtual environment at $VENV; run tools/setup.sh (or stage 0) first" >&2
  exit 1
fi
run_stage 1 prepare do_prepare
run_stage 2 train do_train
run_stage 3 decode do_decode
run_stage 4 export do_export
run_stage 5 results do_results
trap - ERR

echo ""
print_summary
