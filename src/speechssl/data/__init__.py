"""Audio data: manifests, corpus loaders, decoding, the synthetic corpus, datasets and samplers.

Names are imported on first use (PEP 562), so reading manifests and listing corpora never
imports torch: ``speechssl data list`` starts in a fraction of a second.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it
_EXPORTS = {
    "AudioBatch": "speechssl.data.batch",
    "AudioDataset": "speechssl.data.dataset",
    "AudioError": "speechssl.data.audio",
    "AudioInfo": "speechssl.data.audio",
    "AudioItem": "speechssl.data.dataset",
    "BadFile": "speechssl.data.audio",
    "BadFileSummary": "speechssl.data.audio",
    "DataConfig": "speechssl.data.config",
    "DurationBatchSampler": "speechssl.data.sampler",
    "Manifest": "speechssl.data.manifest",
    "ManifestError": "speechssl.data.manifest",
    "REQUIRED_COLUMNS": "speechssl.data.manifest",
    "SPLITS": "speechssl.data.manifest",
    "SyntheticConfig": "speechssl.data.synthetic",
    "Utterance": "speechssl.data.manifest",
    "ValidationReport": "speechssl.data.validate",
    "audio_info": "speechssl.data.audio",
    "available_corpora": "speechssl.data.corpora",
    "build_dataloader": "speechssl.data.dataset",
    "collate_audio": "speechssl.data.dataset",
    "crop_offset": "speechssl.data.dataset",
    "default_cache_dir": "speechssl.data.config",
    "detect_corpus": "speechssl.data.corpora",
    "generate_synthetic_corpus": "speechssl.data.synthetic",
    "group_disjoint_split": "speechssl.data.splits",
    "group_folds": "speechssl.data.splits",
    "folds_from_column": "speechssl.data.splits",
    "with_fold_column": "speechssl.data.splits",
    "FOLD_COLUMN": "speechssl.data.splits",
    "lengths_to_padding_mask": "speechssl.data.batch",
    "load_audio": "speechssl.data.audio",
    "load_corpus": "speechssl.data.corpora",
    "load_manifest": "speechssl.data.config",
    "scan_bad_files": "speechssl.data.dataset",
    "validate_manifest": "speechssl.data.validate",
    "within_group_split": "speechssl.data.splits",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "FOLD_COLUMN",
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
    "folds_from_column",
    "generate_synthetic_corpus",
    "group_disjoint_split",
    "group_folds",
    "lengths_to_padding_mask",
    "load_audio",
    "load_corpus",
    "load_manifest",
    "scan_bad_files",
    "validate_manifest",
    "with_fold_column",
    "within_group_split",
]
