#!/usr/bin/env bash
# The main job: set up, then run the synth recipe (egs/synth/ASR) end to end and print its WERs.
#
# Usage:
#   tools/run_synth.sh                          # all stages
#   tools/run_synth.sh --stage 2 --stop-stage 3 # only train and decode
#   tools/run_synth.sh --stage 7                # only the WER table
#   tools/run_synth.sh --num-epochs 5 --avg 2 --world-size 1 --max-duration 300
#
# Stages (all run inside egs/synth/ASR; the recipe's model is causal, so one model serves
# offline and streaming decoding):
#   0 setup      tools/setup.sh (venv, requirements, kaldifeat / fast_rnnt, icefall_lite)
#   1 prepare    ./prepare.sh                 (corpus, fbank, BPE)
#   2 train      ./zipformer/train.py         (checkpoints in zipformer/exp)
#   3 decode     ./zipformer/decode.py, full context (--chunk-size -1 --left-context-frames -1),
#                --decoding-method greedy_search, then modified_beam_search --beam-size 4, then
#                ctc_greedy_search for a model with a CTC head; on dev, test-synth and test-human
#   4 streaming  ./zipformer/streaming_decode.py --chunk-size 16 --left-context-frames 128
#                --decoding-method greedy_search (320 ms chunks; results in
#                <exp-dir>/streaming/greedy_search); skipped with a note for a model trained
#                with --causal 0
#   5 export     ./zipformer/export.py --jit 1 and ./zipformer/export-onnx.py (fp32 + int8),
#                streaming with the chunk settings of stage 4 for a causal model; then
#                ./zipformer/onnx_pretrained.py transcribes 3 test-human recordings
#   6 curve      tools/wer_curve.py: every checkpoint kept in <exp-dir> decoded on the first
#                100 cuts of dev and test-human (greedy_search, plus ctc_greedy_search with a
#                CTC head) into <exp-dir>/wer-vs-time.tsv; tools/plot_progress.py draws WER
#                against training minutes and the losses against steps into <exp-dir>/progress.png
#   7 results    the table "method | test set | WER" from every wer-summary-*.txt in <exp-dir>,
#                the training wall time, and where the plot is
#   8 lstm       the LSTM transducer recipe (egs/synth/ASR/lstm_transducer): train.py
#                (lstm_transducer/exp), dump_mel_stats.py, decode.py greedy_search,
#                modified_beam_search --beam-size 4 and ctc_greedy_search (when the model
#                has its default CTC head) with the EMA weights of the newest epoch,
#                streaming_decode.py --chunk-size 8 greedy_search with per-utterance and with
#                streaming normalisation, export.py --jit 1 and export-onnx.py, then its WER
#                table; skipped with a note when the recipe is missing
#   9 conv_ctc   the Jasper/QuartzNet CTC recipe after the Zipformer's: ./conv_ctc/train.py
#                (cpu preset, Novograd; checkpoints in conv_ctc/exp), ./conv_ctc/decode.py with
#                ctc_greedy_search, ctc_prefix_beam_search --beam-size 4 and, when prepare.sh's
#                LM stage wrote data/lm/lang_bpe_128_5gram.arpa, the same with --lm-type ngram;
#                ./conv_ctc/export.py --jit 1 --onnx 1; its WER table (CONV_TRAIN_ARGS,
#                CONV_DECODE_ARGS add options)
#
# Options:
#   --stage N / --stop-stage N   first / last stage to run (default 0 / 9)
#   --num-epochs N               epochs to train (default: train.py's own default)
#   --avg N                      epochs to average for decode/export with the running-average
#                                model (default 2: the exact average over the last 2 epochs,
#                                6-3 points better than the newest epoch alone on the default
#                                run, RESULTS.md; lowered automatically when fewer epochs exist)
#   --world-size N               training processes (default: 2 on a CPU-only machine with 2 or
#                                more cores for the Zipformer, each with one thread and half the
#                                recipe's batch, so every update still sees --max-duration's
#                                default of audio: as fast per epoch as one 2-thread process
#                                on an idle machine, 1.6x faster beside niced background jobs,
#                                RESULTS.md "Fifth round"; 1 otherwise and for the LSTM and
#                                conv CTC stages)
#   --max-duration S             seconds of audio per batch and process (default: the recipe's
#                                own default, split over the processes of the default world size)
#   --exp-dir DIR                experiment folder, relative to egs/synth/ASR (default zipformer/exp)
#   --lstm-epochs N              epochs of the stage-8 LSTM transducer (default: its train.py's)
# Environment: VENV (default <repo>/.venv); SETUP_ARGS, PREPARE_ARGS, TRAIN_ARGS, DECODE_ARGS,
# STREAMING_ARGS, EXPORT_ARGS (export.py and export-onnx.py), LSTM_TRAIN_ARGS add options to the
# matching stage.
#
# A stage whose script does not exist yet is reported ("stage N not available yet: <path> missing")
# and skipped; a stage that exists and fails stops the job with a non-zero exit code.

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RECIPE="$REPO_ROOT/egs/synth/ASR"
VENV="${VENV:-$REPO_ROOT/.venv}"
export VENV

stage=0
stop_stage=9
lstm_epochs=""
lstm_exp_dir="lstm_transducer/exp"
lstm_chunk=8
# WER-vs-training-time curve (stage 6): cuts per test set.
curve_utts=100
num_epochs=""
avg=2
world_size=""
max_duration=""
exp_dir="zipformer/exp"
# Streaming decoding and the exported streaming models: 320 ms chunks (50 Hz frames after the
# front end) and 2.56 s of left context, icefall's usual demo setting.
stream_chunk=16
stream_left=128
# How many test-human recordings the exported ONNX model transcribes in stage 5.
num_demo_files=3

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
    --lstm-epochs)
      need_value "$@"
      need_int "$1" "$2"
      lstm_epochs=$2
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
  summary+=("$(printf 'stage %d %-9s %5ds  %s' "$n" "$name" $((SECONDS - t0)) "${stage_note:-done}")")
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

# The Zipformer's default number of training processes: 2 on a CPU-only machine with at least
# 2 cores, else 1 (one GPU process, or one core).
default_train_world_size() {
  local cuda
  cuda="$(python3 -c 'import torch; print(int(torch.cuda.is_available()))' 2>/dev/null || echo 0)"
  if [[ "$cuda" == 0 && "$(nproc)" -ge 2 ]]; then echo 2; else echo 1; fi
}

# A default of the synth Zipformer recipe's train.py (zipformer/recipe_defaults.py).
recipe_train_default() {
  (cd "$RECIPE/zipformer" && python3 -c "import recipe_defaults as r; print(r.TRAIN_DEFAULTS['$1'])")
}

# Joins its arguments with ", " (a stage's notes for the summary).
join_notes() {
  local out=$1
  shift
  local note
  for note in "$@"; do out+=", $note"; done
  echo "$out"
}

# Latest epoch-N.pt in the experiment folder (or in the folder given), empty when none.
latest_epoch() {
  local f n best="" dir="${1:-$exp_dir}"
  for f in "$RECIPE/$dir"/epoch-*.pt; do
    [[ -e "$f" ]] || continue
    n="${f##*/epoch-}"
    n="${n%.pt}"
    [[ "$n" =~ ^[0-9]+$ ]] || continue
    if [[ -z "$best" || $n -gt $best ]]; then best=$n; fi
  done
  echo "$best"
}

# Sets epoch_avg_args to "--epoch E --avg A" for the newest epoch, checkpoint to that epoch's
# file and model_tag to export-onnx.py's "epoch-E-avg-A". With the running-average model
# (icefall's default), averaging needs A < E; --avg 1, or a single epoch, uses the epoch's
# checkpoint as it is.
choose_epoch_avg() {
  local e
  e="$(latest_epoch)"
  if [[ -z "$e" ]]; then
    return 1
  fi
  local a=$avg
  if [[ $a -ge $e ]]; then a=$((e - 1)); fi
  if [[ $a -le 1 ]]; then
    a=1
    epoch_avg_args=(--epoch "$e" --avg 1 --use-averaged-model 0)
  else
    epoch_avg_args=(--epoch "$e" --avg "$a")
  fi
  checkpoint="$RECIPE/$exp_dir/epoch-$e.pt"
  model_tag="epoch-$e-avg-$a"
}

# Like choose_epoch_avg, but reports and skips the stage when there is no checkpoint yet.
need_checkpoint() {
  if choose_epoch_avg; then return 0; fi
  echo "stage $current skipped: no epoch-*.pt in egs/synth/ASR/$exp_dir (train first)"
  stage_note="skipped: no checkpoints in $exp_dir"
  return 1
}

# Sets causal (trained with --causal 1) and has_ctc (trained with --use-ctc 1) to 1 or 0 from
# the params stored at the top level of the checkpoint (read as decode.py reads them);
# remembered per file, as loading torch takes a while.
flags_checked_for=""
check_model_flags() {
  [[ "$flags_checked_for" == "$1" ]] && return 0
  local flags
  flags="$(PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -c '
import sys
from icefall_lite.checkpoint import read_checkpoint, stored_params
params = stored_params(read_checkpoint(sys.argv[1]))
print(int(bool(params.get("causal"))), int(bool(params.get("use_ctc"))))
' "$1")"
  read -r causal has_ctc <<<"$flags"
  flags_checked_for=$1
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
  local args=(--exp-dir "$exp_dir")
  local auto_world_size
  auto_world_size="$(default_train_world_size)"
  if [[ -n "$world_size" ]]; then
    args+=(--world-size "$world_size")
  elif [[ "$auto_world_size" -gt 1 && -z "$max_duration" ]]; then
    # One 1-thread process per core, each with half of the recipe's batch: the same audio per
    # update (gradients are averaged over the ranks) without OpenMP threads waiting on each
    # other on cores that other jobs share.
    args+=(--world-size 2 --global-batch-size "$(recipe_train_default max_duration)")
  elif [[ "$auto_world_size" -gt 1 ]]; then
    args+=(--world-size 2)
  fi
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
  need_checkpoint || return 0
  # Full context: a causal model decodes with the whole utterance (flags ignored otherwise).
  local args=("${epoch_avg_args[@]}" --exp-dir "$exp_dir" --chunk-size -1 --left-context-frames -1)
  [[ -n "$max_duration" ]] && args+=(--max-duration "$max_duration")
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/decode.py "${args[@]}" --decoding-method greedy_search \
    ${DECODE_ARGS:-}
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/decode.py "${args[@]}" \
    --decoding-method modified_beam_search --beam-size 4 ${DECODE_ARGS:-}
  stage_note="greedy_search, modified_beam_search"
  check_model_flags "$checkpoint"
  if [[ "$has_ctc" == 1 ]]; then
    # shellcheck disable=SC2086
    in_recipe python3 ./zipformer/decode.py "${args[@]}" --decoding-method ctc_greedy_search \
      ${DECODE_ARGS:-}
    stage_note+=", ctc_greedy_search"
  fi
  stage_note+=" (full context)"
}

do_streaming() {
  local script="$RECIPE/zipformer/streaming_decode.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  need_checkpoint || return 0
  check_model_flags "$checkpoint"
  if [[ "$causal" != 1 ]]; then
    echo "stage $current skipped: ${checkpoint#"$RECIPE"/} was trained with --causal 0;" \
      "chunk-wise streaming needs a causal model (train without TRAIN_ARGS=\"--causal 0\")"
    stage_note="skipped: model not causal"
    return 0
  fi
  local args=("${epoch_avg_args[@]}" --exp-dir "$exp_dir")
  args+=(--chunk-size "$stream_chunk" --left-context-frames "$stream_left")
  [[ -n "$max_duration" ]] && args+=(--max-duration "$max_duration")
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/streaming_decode.py "${args[@]}" \
    --decoding-method greedy_search ${STREAMING_ARGS:-}
  stage_note="greedy_search, chunk $stream_chunk, left context $stream_left"
}

# First num_demo_files test-human recordings that exist, one path (relative to the recipe) a
# line, from the manifest prepare.sh wrote; nothing when there is none.
demo_wavs() {
  local manifest="$RECIPE/data/manifests/synth_recordings_test-human.jsonl.gz"
  [[ -f "$manifest" ]] || return 0
  (cd "$RECIPE" && python3 -c '
import gzip, json, os, sys
paths = []
with gzip.open(sys.argv[1], "rt") as f:
    for line in f:
        for source in json.loads(line)["sources"]:
            if source["type"] == "file" and os.path.isfile(source["source"]):
                paths.append(source["source"])
print("\n".join(paths[: int(sys.argv[2])]))
' "$manifest" "$num_demo_files")
}

do_export() {
  local export_py="$RECIPE/zipformer/export.py" onnx_py="$RECIPE/zipformer/export-onnx.py"
  if [[ ! -f "$export_py" && ! -f "$onnx_py" ]]; then
    missing "$export_py"
    return 0
  fi
  need_checkpoint || return 0
  local args=("${epoch_avg_args[@]}" --exp-dir "$exp_dir") encoder_tag=$model_tag kind=offline
  check_model_flags "$checkpoint"
  if [[ "$causal" == 1 ]]; then
    args+=(--chunk-size "$stream_chunk" --left-context-frames "$stream_left")
    encoder_tag+="-chunk-$stream_chunk-left-$stream_left"
    kind="streaming (chunk $stream_chunk, left context $stream_left)"
  fi
  echo "exporting the $kind model"
  local notes=()
  if [[ -f "$export_py" ]]; then
    # shellcheck disable=SC2086
    in_recipe python3 ./zipformer/export.py "${args[@]}" --jit 1 ${EXPORT_ARGS:-}
    notes+=("pretrained.pt + jit")
  else
    missing "$export_py"
    notes+=("$stage_note")
  fi
  if [[ ! -f "$onnx_py" ]]; then
    missing "$onnx_py"
    notes+=("$stage_note")
    stage_note="$(join_notes "${notes[@]}")"
    return 0
  fi
  # shellcheck disable=SC2086
  in_recipe python3 ./zipformer/export-onnx.py "${args[@]}" ${EXPORT_ARGS:-}
  notes+=("onnx (fp32 + int8)")
  local exp="$RECIPE/$exp_dir" f
  local models=(
    "$exp/encoder-$encoder_tag.onnx" "$exp/decoder-$model_tag.onnx" "$exp/joiner-$model_tag.onnx"
  )
  for f in "${models[@]}"; do
    if [[ ! -f "$f" ]]; then
      echo "run_synth.sh: export-onnx.py did not write ${f#"$RECIPE"/}" >&2
      return 1
    fi
  done
  local listing wavs=()
  listing="$(demo_wavs)"
  [[ -n "$listing" ]] && mapfile -t wavs <<<"$listing"
  if [[ ${#wavs[@]} -eq 0 ]]; then
    echo "no test-human recordings found (data/manifests/synth_recordings_test-human.jsonl.gz);" \
      "skipping the ONNX transcription demo"
    notes+=("no demo audio")
  elif [[ ! -f "$RECIPE/zipformer/onnx_pretrained.py" ]]; then
    missing "$RECIPE/zipformer/onnx_pretrained.py"
    notes+=("$stage_note")
  else
    echo "transcribing ${#wavs[@]} test-human recording(s) with the exported ONNX model:"
    in_recipe python3 ./zipformer/onnx_pretrained.py \
      --encoder-model-filename "${models[0]#"$RECIPE"/}" \
      --decoder-model-filename "${models[1]#"$RECIPE"/}" \
      --joiner-model-filename "${models[2]#"$RECIPE"/}" \
      --tokens "$exp_dir/tokens.txt" "${wavs[@]}"
    notes+=("onnx transcribed ${#wavs[@]} file(s)")
  fi
  stage_note="$(join_notes "${notes[@]}")"
}

do_curve() {
  local curve_py="$REPO_ROOT/tools/wer_curve.py" plot_py="$REPO_ROOT/tools/plot_progress.py"
  [[ -f "$curve_py" ]] || {
    missing "$curve_py"
    return 0
  }
  need_checkpoint || return 0
  check_model_flags "$checkpoint"
  local methods=greedy_search
  [[ "$has_ctc" == 1 ]] && methods+=",ctc_greedy_search"
  in_recipe python3 "$curve_py" --exp-dir "$exp_dir" --cuts-prefix synth \
    --test-sets dev,test-human --max-utts "$curve_utts" --decoding-methods "$methods"
  stage_note="$exp_dir/wer-vs-time.tsv"
  if [[ -f "$plot_py" ]]; then
    in_recipe python3 "$plot_py" --run "recipe default=$exp_dir" --out "$exp_dir/progress.png" \
      --methods "$methods" --test-sets dev,test-human \
      --title "egs/synth/ASR $exp_dir: WER on $curve_utts cuts vs training time"
    stage_note+=", $exp_dir/progress.png"
  fi
}

# Training wall time from the newest epoch checkpoint (train_seconds), e.g. "17.6 min".
training_time() {
  [[ -n "${checkpoint:-}" && -f "$checkpoint" ]] || return 0
  PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" python3 -c '
import sys
from icefall_lite.checkpoint import read_checkpoint
seconds = read_checkpoint(sys.argv[1]).get("train_seconds")
print("" if seconds is None else f"{float(seconds) / 60:.1f} min")
' "$checkpoint"
}

# Prints one "method|test set|WER|settings" line for a wer-summary-*.txt (icefall's layout: a
# "settings<TAB>WER" header, then "<settings><TAB><wer>").
wer_row() {
  local f=$1 exp=$2
  local method="${f#"$exp"/}"
  method="${method%/*}"
  local name="${f##*/wer-summary-}"
  name="${name%.txt}"
  local test_set=$name settings="" rest=""
  if [[ "$name" =~ ^(.+)-((epoch|iter)-[0-9]+_avg-[0-9]+)(.*)$ ]]; then
    test_set=${BASH_REMATCH[1]}
    settings=${BASH_REMATCH[2]}
    rest=${BASH_REMATCH[4]}
  fi
  if [[ "$rest" =~ _chunk-(-?[0-9]+)_left-context-(-?[0-9]+) ]]; then
    if [[ ${BASH_REMATCH[1]} == -1 ]]; then
      settings+=", full context"
    else
      settings+=", chunk ${BASH_REMATCH[1]} left ${BASH_REMATCH[2]}"
    fi
  fi
  # Beam and LM fusion, so that a search with and without the LM get different rows.
  [[ "$rest" =~ _beam-size-([0-9]+) ]] && settings+=", beam ${BASH_REMATCH[1]}"
  if [[ "$rest" =~ _lm-([a-z0-9]+)-scale-([0-9.]+)(-wib-([0-9.]+))? ]]; then
    settings+=", + ${BASH_REMATCH[1]} LM ${BASH_REMATCH[2]}"
    [[ -n "${BASH_REMATCH[4]}" ]] && settings+=", bonus ${BASH_REMATCH[4]}"
  fi
  local wer
  wer="$(awk -F'\t' 'NR == 2 { print $NF; exit }' "$f")"
  echo "$method|$test_set|${wer:-?}|$settings"
}

do_results() {
  local exp="$RECIPE/$exp_dir" files=() f
  if [[ -d "$exp" ]]; then
    mapfile -t files < <(find "$exp" -name 'wer-summary-*.txt' -type f | LC_ALL=C sort)
  fi
  echo "WER (%) from egs/synth/ASR/$exp_dir/**/wer-summary-*.txt:"
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "  (none yet: decode has not written any wer-summary-*.txt)"
    stage_note="no WER files yet"
    return 0
  fi
  local fmt="  %-24s | %-11s | %6s | %s\n" previous="" row method test_set wer settings
  # shellcheck disable=SC2059  # the format is the variable above
  printf "$fmt" "method" "test set" "WER" "settings"
  for f in "${files[@]}"; do
    row="$(wer_row "$f" "$exp")"
    IFS='|' read -r method test_set wer settings <<<"$row"
    # One block per method: the name is written on its first row only.
    if [[ "$method" == "$previous" ]]; then
      # shellcheck disable=SC2059
      printf "$fmt" "" "$test_set" "$wer" "$settings"
    else
      # shellcheck disable=SC2059
      printf "$fmt" "$method" "$test_set" "$wer" "$settings"
    fi
    previous=$method
  done
  stage_note="${#files[@]} WER result(s)"
  if choose_epoch_avg; then
    local minutes
    minutes="$(training_time)"
    [[ -n "$minutes" ]] && echo "training wall time (to ${checkpoint#"$RECIPE"/}): $minutes"
  fi
  [[ -f "$exp/progress.png" ]] && echo "WER vs training time: egs/synth/ASR/$exp_dir/progress.png"
  return 0
}

# The LSTM transducer recipe end to end (stage 8): train, decode with the EMA weights of the
# newest epoch, chunk-wise streaming with both normalisations, export, its WER table.
do_lstm() {
  local script="$RECIPE/lstm_transducer/train.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  local train_args=(--world-size "${world_size:-1}")
  [[ -n "$lstm_epochs" ]] && train_args+=(--num-epochs "$lstm_epochs")
  # shellcheck disable=SC2086
  in_recipe python3 ./lstm_transducer/train.py "${train_args[@]}" ${LSTM_TRAIN_ARGS:-}
  local e
  e="$(latest_epoch "$lstm_exp_dir")"
  if [[ -z "$e" ]]; then
    echo "stage $current: no epoch-*.pt in egs/synth/ASR/$lstm_exp_dir after training" >&2
    return 1
  fi
  in_recipe python3 ./lstm_transducer/dump_mel_stats.py --max-cuts 1500
  local sel=(--epoch "$e" --avg 1 --use-averaged-model 0 --use-ema 1)
  in_recipe python3 ./lstm_transducer/decode.py "${sel[@]}" --decoding-method greedy_search
  in_recipe python3 ./lstm_transducer/decode.py "${sel[@]}" --decoding-method modified_beam_search \
    --beam-size 4
  # The recipe trains a CTC head by default (--use-ctc 1): its greedy decode beside, unless
  # LSTM_TRAIN_ARGS turned the head off.
  check_model_flags "$RECIPE/$lstm_exp_dir/epoch-$e.pt"
  if [[ "$has_ctc" == 1 ]]; then
    in_recipe python3 ./lstm_transducer/decode.py "${sel[@]}" --decoding-method ctc_greedy_search
  fi
  in_recipe python3 ./lstm_transducer/streaming_decode.py "${sel[@]}" --chunk-size "$lstm_chunk" \
    --decoding-method greedy_search
  in_recipe python3 ./lstm_transducer/streaming_decode.py "${sel[@]}" --chunk-size "$lstm_chunk" \
    --decoding-method greedy_search --stream-norm 1
  in_recipe python3 ./lstm_transducer/export.py "${sel[@]}" --chunk-size "$lstm_chunk" --jit 1
  in_recipe python3 ./lstm_transducer/export-onnx.py "${sel[@]}" --chunk-size "$lstm_chunk"
  local files=() f exp="$RECIPE/$lstm_exp_dir"
  mapfile -t files < <(find "$exp" -name 'wer-summary-*.txt' -type f | LC_ALL=C sort)
  echo "WER (%) from egs/synth/ASR/$lstm_exp_dir/**/wer-summary-*.txt:"
  for f in "${files[@]}"; do
    echo "  $(wer_row "$f" "$exp" | tr '|' '\t')"
  done
  stage_note="epoch $e (EMA), ${#files[@]} WER result(s), jit + onnx"
}

# Stage 9: the conv_ctc recipe, with its own experiment folder (the helpers above read
# $exp_dir, so it is switched for the stage and restored).
conv_exp="conv_ctc/exp"
conv_lm="data/lm/lang_bpe_128_5gram.arpa"
do_conv_ctc() {
  local script="$RECIPE/conv_ctc/train.py"
  [[ -f "$script" ]] || {
    missing "$script"
    return 0
  }
  local zipformer_exp=$exp_dir
  exp_dir=$conv_exp
  local args=(--exp-dir "$conv_exp")
  [[ -n "$num_epochs" ]] && args+=(--num-epochs "$num_epochs")
  # shellcheck disable=SC2086
  in_recipe python3 ./conv_ctc/train.py "${args[@]}" ${CONV_TRAIN_ARGS:-}
  if ! choose_epoch_avg; then
    exp_dir=$zipformer_exp
    stage_note="trained, but no epoch-*.pt in $conv_exp"
    return 0
  fi
  local dec=(--exp-dir "$conv_exp" "${epoch_avg_args[@]}")
  # shellcheck disable=SC2086
  in_recipe python3 ./conv_ctc/decode.py "${dec[@]}" --decoding-method ctc_greedy_search \
    ${CONV_DECODE_ARGS:-}
  # shellcheck disable=SC2086
  in_recipe python3 ./conv_ctc/decode.py "${dec[@]}" --decoding-method ctc_prefix_beam_search \
    --beam-size 4 ${CONV_DECODE_ARGS:-}
  local notes=("ctc_greedy_search" "ctc_prefix_beam_search")
  if [[ -f "$RECIPE/$conv_lm" ]]; then
    # Scale 0.5 and bonus 2.5: the best of a sweep on dev (RESULTS.md, conv_ctc section).
    # shellcheck disable=SC2086
    in_recipe python3 ./conv_ctc/decode.py "${dec[@]}" --decoding-method ctc_prefix_beam_search \
      --beam-size 4 --lm-type ngram --lm-path "$conv_lm" --lm-scale 0.5 \
      --word-insertion-bonus 2.5 ${CONV_DECODE_ARGS:-}
    notes+=("+ LM")
  else
    notes+=("no LM ($conv_lm missing: prepare.sh stage 10)")
  fi
  in_recipe python3 ./conv_ctc/export.py "${dec[@]}" --jit 1 --onnx 1
  notes+=("export jit + onnx")
  do_results
  exp_dir=$zipformer_exp
  stage_note="$(join_notes "${notes[@]}")"
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
run_stage 4 streaming do_streaming
run_stage 5 export do_export
run_stage 6 curve do_curve
run_stage 7 results do_results
run_stage 8 lstm do_lstm
run_stage 9 conv_ctc do_conv_ctc
trap - ERR

echo ""
print_summary
