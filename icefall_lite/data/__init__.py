"""Data side of icefall-lite: the shared data module, cut manifests, filtering, fbank, BPE."""

from icefall_lite.data.cuts import cuts_filename, load_cut_file, load_cuts
from icefall_lite.data.datamodule import AsrDataModule, ExactResumeBucketingSampler
from icefall_lite.data.features import (
    compute_fbank_for_cuts,
    kaldifeat_available,
    make_fbank_extractor,
    speed_perturb,
)
from icefall_lite.data.filters import (
    FilterReport,
    check_cut_for_training,
    conv2d_subsampled_frames,
    filter_cuts_for_training,
)
from icefall_lite.data.tokenizer import (
    load_bpe_model,
    train_bpe_model,
    unencodable_characters,
    write_tokens_txt,
)
from icefall_lite.data.transcripts import number_to_words, to_spoken_transcript

__all__ = [
    "AsrDataModule",
    "ExactResumeBucketingSampler",
    "FilterReport",
    "check_cut_for_training",
    "compute_fbank_for_cuts",
    "conv2d_subsampled_frames",
    "cuts_filename",
    "filter_cuts_for_training",
    "kaldifeat_available",
    "load_bpe_model",
    "load_cut_file",
    "load_cuts",
    "make_fbank_extractor",
    "number_to_words",
    "speed_perturb",
    "to_spoken_transcript",
    "train_bpe_model",
    "unencodable_characters",
    "write_tokens_txt",
]
