#!/usr/bin/env bash
# LibriSpeech: download (or point at a downloaded copy), manifests, fbank, MUSAN, BPE.
#
# Usage:
#   ./prepare.sh --stage 0 --stop-stage 5                    # everything, downloading to ./download
#   ./prepare.sh --dl-dir /data/corpora --stage 1            # an already downloaded copy
#   ./prepare.sh --dl-dir /data/corpora --parts "train-clean-100 dev-clean test-clean"
#
# --dl-dir must contain LibriSpeech/<part>/<speaker>/<chapter>/*.flac and *.trans.txt, and
# musan/{music,speech,noise} (unless --enable-musan false).
#
# Stages (each leaves data/.stage<N>.done):
#   0  download LibriSpeech and MUSAN with lhotse (skipped for what --dl-dir already has)
#   1  lhotse manifests for the LibriSpeech parts  -> data/manifests/librispeech_*_<part>.jsonl.gz
#   2  lhotse manifests for MUSAN                  -> data/manifests/musan_*.jsonl.gz
#   3  fbank (+ speed perturbation 0.9/1.1 on train-*) -> data/fbank/librispeech_cuts_<part>.jsonl.gz
#      and, when all 960 h are there, librispeech_cuts_train-all-shuf.jsonl.gz (--full-libri)
#   4  MUSAN fbank, 10 s windows                   -> data/fbank/musan_cuts.jsonl.gz
#   5  BPE on the train-* transcripts              -> data/lang_bpe_<vocab_size>/{bpe.model,tokens.txt}

set -eou pipefail

stage=0
stop_stage=100
nj=2
dl_dir=$PWD/download
# Parts to prepare; "auto": every LibriSpeech part found under $dl_dir/LibriSpeech.
parts=auto
vocab_size=500
perturb_speed=true
enable_musan=true

. shared/parse_options.sh || exit 1

. shared/stages.sh || exit 1

python=${PYTHON:-python3}
# lhotse's CLI, from the same Python environment as the local/ scripts.
lhotse() {
  $python -c 'import sys; from lhotse.bin.lhotse import cli; sys.argv[0] = "lhotse"; cli()' "$@"
}
all_parts="train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other"
mkdir -p data/manifests data/fbank

if [ "$parts" = auto ]; then
  parts=""
  for p in $all_parts; do
    [ -d "$dl_dir/LibriSpeech/$p" ] && parts="$parts $p"
  done
  parts=${parts# }
  if [ -z "$parts" ] && [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    parts=$all_parts  # stage 0 downloads them
  fi
fi
train_parts=""
for p in $parts; do
  case $p in train-*) train_parts="$train_parts data/fbank/librispeech_cuts_$p.jsonl.gz" ;; esac
done

need_corpus() {
  if [ ! -d "$dl_dir/LibriSpeech" ]; then
    echo "prepare.sh: --dl-dir $dl_dir has no LibriSpeech/ (stage 0 downloads it)" >&2
    exit 1
  fi
  if [ -z "$parts" ]; then
    echo "prepare.sh: --dl-dir $dl_dir/LibriSpeech has none of: $all_parts" >&2
    exit 1
  fi
  for p in $parts; do
    if [ ! -d "$dl_dir/LibriSpeech/$p" ]; then
      echo "prepare.sh: --dl-dir $dl_dir/LibriSpeech/$p not found (stage 0 downloads it)" >&2
      exit 1
    fi
  done
}

download() {
  if [ ! -d "$dl_dir/LibriSpeech" ]; then
    lhotse download librispeech --full "$dl_dir"
  else
    log "$dl_dir/LibriSpeech exists, not downloading"
  fi
  if [ "$enable_musan" = true ] && [ ! -d "$dl_dir/musan" ]; then
    lhotse download musan "$dl_dir"
  fi
}

librispeech_manifests() {
  need_corpus
  local part_args=()
  for p in $parts; do part_args+=(-p "$p"); done
  lhotse prepare librispeech -j "$nj" "${part_args[@]}" "$dl_dir/LibriSpeech" data/manifests
}

musan_manifests() {
  if [ ! -d "$dl_dir/musan" ]; then
    echo "prepare.sh: --dl-dir $dl_dir has no musan/ (stage 0 downloads it; or --enable-musan false)" >&2
    exit 1
  fi
  lhotse prepare musan "$dl_dir/musan" data/manifests
}

run_stage 0 "download" download
run_stage 1 "LibriSpeech manifests ($parts)" librispeech_manifests
if [ "$enable_musan" = true ]; then
  run_stage 2 "MUSAN manifests" musan_manifests
fi
fbank() {
  $python local/compute_fbank_librispeech.py --parts $parts --nj "$nj" \
    --perturb-speed "$perturb_speed"
  # train.py --full-libri 1 reads the three training parts as one shuffled manifest.
  local full=data/fbank/librispeech_cuts_train-all-shuf.jsonl.gz full_parts=() p
  for p in train-clean-100 train-clean-360 train-other-500; do
    if [ -f "data/fbank/librispeech_cuts_$p.jsonl.gz" ]; then
      full_parts+=("data/fbank/librispeech_cuts_$p.jsonl.gz")
    fi
  done
  if [ "${#full_parts[@]}" -eq 3 ] && [ ! -f "$full" ]; then
    $python local/combine_train_cuts.py --inputs "${full_parts[@]}" --output "$full"
  elif [ "${#full_parts[@]}" -lt 3 ]; then
    log "Not all of the 960 h training parts are there; $full (--full-libri 1) not made"
  fi
}
run_stage 3 "fbank ($parts)" fbank
if [ "$enable_musan" = true ]; then
  run_stage 4 "MUSAN fbank" $python local/compute_fbank_musan.py --nj "$nj"
fi

bpe() {
  if [ -z "$train_parts" ]; then
    echo "prepare.sh: no train-* part among --parts '$parts' to train BPE on" >&2
    exit 1
  fi
  $python local/train_bpe_model.py --cuts $train_parts --lang-dir "data/lang_bpe_$vocab_size" \
    --vocab-size "$vocab_size"
}
run_stage 5 "BPE (vocab $vocab_size)" bpe
