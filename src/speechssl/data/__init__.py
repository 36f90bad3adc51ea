"""Audio data: manifests, corpus loaders, decoding, the synthetic corpus, datasets and samplers."""

from speechssl.data.audio import AudioError, AudioInfo, BadFile, BadFileSummary, audio_info, load_audio
from speechssl.data.batch import AudioBatch, lengths_to_padding_mask
from speechssl.data.config import DataConfig, default_cache_dir, load_manifest
from speechssl.data.corpora import available_corpora, detect_corpus, load_corpus
from speechssl.data.dataset import (
    AudioDataset,
    AudioItem,
    build_dataloader,
    collate_audio,
    crop_offset,
    scan_bad_files,
)
from speechssl.data.manifest import REQUIRED_COLUMNS, SPLITS, Manifest, ManifestError, Utterance
from speechssl.data.sampler import DurationBatchSampler
from speechssl.data.splits import group_disjoint_split, group_folds, within_group_split
from speechssl.data.synthetic import SyntheticConfig, generate_synthetic_corpus
from speechssl.data.validate import ValidationReport, validate_manifest

__all__ = [
    "REQUIRED_COLUMNS",
    "SPLITS",
    "AudioBatch",
    "AudioDataset",
    "AudioError",
    "AudioInfo",
    "AudioItem",
    "BadFile",
    "BadFileSummary",
    "DataConfig",
    "DurationBatchSampler",
    "Manifest",
    "ManifestError",
    "SyntheticConfig",
    "Utterance",
    "ValidationReport",
    "audio_info",
    "available_corpora",
    "build_dataloader",
    "collate_audio",
    "crop_offset",
    "default_cache_dir",
    "detect_corpus",
    "generate_synthetic_corpus",
    "group_disjoint_split",
    "group_folds",
    "lengths_to_padding_mask",
    "load_audio",
    "load_corpus",
    "load_manifest",
    "scan_bad_files",
    "validate_manifest",
    "within_group_split",
]
