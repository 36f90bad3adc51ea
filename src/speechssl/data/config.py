"""Configuration of the data a run reads, and turning it into a manifest."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechssl.data.audio import DEFAULT_SAMPLE_RATE, BadFileSummary
from speechssl.data.corpora import available_corpora, load_corpus
from speechssl.data.manifest import Manifest
from speechssl.data.synthetic import SyntheticConfig, config_hash, generate_synthetic_corpus

SYNTHETIC = "synthetic"
SAMPLE_RATE_RANGE = (8000, 192000)
"""Hz: the sample rates ``data.sample_rate`` accepts (telephone speech to studio audio)."""
MAX_CROP_SECONDS = 3600.0
"""Longest ``data.crop_seconds``: an hour (a longer crop is a unit mistake, not a crop)."""
SHARDS = "shards"
CACHE_ENV = "SPEECHSSL_CACHE"


def default_cache_dir() -> Path:
    """``$SPEECHSSL_CACHE``, else ``$XDG_CACHE_HOME/speechssl``, else ``~/.cache/speechssl``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "speechssl"


@dataclass
class DataConfig:
    """Which audio a pretraining or probing run reads, and how it is batched.

    Attributes:
        corpus: a corpus name from :func:`~speechssl.data.corpora.available_corpora`
            (``"manifest"`` for a saved manifest file, ``"lhotse"`` for a lhotse CutSet file), ``"synthetic"``, or ``"shards"`` for
            WebDataset shards written by ``speechssl data shard`` (root: their folder or index;
            ``corpus_options.shuffle_buffer``: samples per shuffle buffer, default 1000).
        root: the corpus folder or manifest file; for ``"synthetic"``, where its WAVs are
            written (default ``<cache>/synthetic/<config hash>``, see :func:`default_cache_dir`).
        corpus_options: extra options of the corpus loader (e.g. ``subsets`` for librispeech).
        split: rows of this split only; ``None`` keeps every row.
        crop_seconds: random crop length for pretraining, in ``(0, MAX_CROP_SECONDS]`` (an hour);
            ``None`` uses whole utterances.
        max_batch_seconds: bound on a batch's padded duration (see ``DurationBatchSampler``),
            finite and > 0.
        num_workers: DataLoader worker processes.
        skip_bad: skip unreadable files (listed and counted) instead of stopping.
        sample_rate: rate every waveform is resampled to, in Hz, within ``SAMPLE_RATE_RANGE``
            (8 kHz telephone speech to 192 kHz studio audio).
        synthetic: the synthetic corpus, used when ``corpus == "synthetic"``.
        text_column: the label column whose text each batch carries (``AudioBatch.text``) for
            the multi-modal methods (``transcript``, ``keyword``, ``word``; see
            :data:`speechssl.data.pairing.PAIRINGS`); ``None``: no text.
        image_column: the label column of ``.npy``/``.png`` paths whose images each batch
            carries (``AudioBatch.images``); ``None``: no images.
    """

    corpus: str = SYNTHETIC
    root: str | None = None
    corpus_options: dict[str, Any] = field(default_factory=dict)
    split: str | None = "train"
    crop_seconds: float | None = 2.0
    max_batch_seconds: float = 32.0
    num_workers: int = 2
    skip_bad: bool = True
    sample_rate: int = DEFAULT_SAMPLE_RATE
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    text_column: str | None = None
    image_column: str | None = None

    def __post_init__(self) -> None:
        names = [*available_corpora(), SYNTHETIC, SHARDS]
        if self.corpus not in names:
            raise ValueError(f"corpus: unknown corpus {self.corpus!r} (expected one of: {', '.join(names)})")
        if self.root is None and self.corpus != SYNTHETIC:
            raise ValueError(
                f"root: corpus {self.corpus!r} needs root (its folder or manifest file), found None"
            )
        if self.corpus == SHARDS and set(self.corpus_options) - {"shuffle_buffer"}:
            raise ValueError(f"corpus_options: shards take only shuffle_buffer, found {self.corpus_options}")
        if self.corpus == SYNTHETIC and self.corpus_options:
            raise ValueError(f"corpus_options: the synthetic corpus takes none, found {self.corpus_options}")
        if self.split is not None and not self.split:
            raise ValueError("split: expected a split name or null (all rows), found ''")
        if self.crop_seconds is not None and not 0 < self.crop_seconds <= MAX_CROP_SECONDS:
            raise ValueError(
                f"crop_seconds: expected a number of seconds in (0, {MAX_CROP_SECONDS:g}] or null, "
                f"found {self.crop_seconds}"
            )
        if not (self.max_batch_seconds > 0 and math.isfinite(self.max_batch_seconds)):
            raise ValueError(
                f"max_batch_seconds: expected a finite number > 0, found {self.max_batch_seconds}"
            )
        if self.num_workers < 0:
            raise ValueError(f"num_workers: expected >= 0, found {self.num_workers}")
        low, high = SAMPLE_RATE_RANGE
        if not low <= self.sample_rate <= high:
            raise ValueError(f"sample_rate: expected a rate in [{low}, {high}] Hz, found {self.sample_rate}")


def load_manifest(cfg: DataConfig, bad_files: BadFileSummary | None = None) -> Manifest:
    """The manifest ``cfg`` describes, restricted to ``cfg.split`` (generating the synthetic corpus if needed).

    Args:
        cfg: the data configuration.
        bad_files: where to record the corpus files whose header is bad, which are left
            out (pass one when ``cfg.skip_bad``); ``None`` stops at the first. The corpus is
            probed before ``cfg.split`` is selected, so bad files of every split are listed.
            Synthetic corpora and saved manifests read no headers and add nothing.

    Raises:
        ValueError: ``cfg.split`` names no row of the manifest.
        AudioError: with ``bad_files=None``, a corpus file whose header is bad.
    """
    if cfg.corpus == SHARDS:
        raise ValueError(
            f"corpus: expected a corpus folder or manifest here, found shards ({cfg.root}); "
            "pass the manifest the shards were written from"
        )
    if cfg.corpus == SYNTHETIC:
        root = cfg.root or default_cache_dir() / SYNTHETIC / config_hash(cfg.synthetic)
        manifest = generate_synthetic_corpus(cfg.synthetic, root)
    else:
        manifest = load_corpus(cfg.corpus, cfg.root, bad_files=bad_files, **cfg.corpus_options)
    if cfg.split is None:
        return manifest
    subset = manifest.filter(split=cfg.split)
    if not len(subset):
        found = ", ".join(str(name) for name in manifest.counts("split")) or "none"
        raise ValueError(f"split: no rows of split {cfg.split!r} in corpus {cfg.corpus!r} (splits: {found})")
    return subset
