"""Unit labels of a whole corpus, computed once per (tokenizer, corpus) and memory-mapped.

HuBERT labels every training frame with the current tokenizer before each iteration
(Hsu et al. 2021, §II-B); probes and unit-quality scores read the same labels again.
:func:`label_corpus` runs a :class:`~speechssl.models.units.UnitTokenizer` over a manifest
batch by batch (the data pipeline of :mod:`speechssl.data`, whole utterances at 16 kHz)
and stores the result in an entry folder ``<root>/<key[:2]>/<key>/``:

* ``units.bin``: every utterance's units, one flat little-endian array (``int16`` when
  ``num_units ≤ 32767``, else ``int32``) in the order the batches were computed;
* ``index.npy``: ``(utterances, 2)`` int64 ``(offset, length)`` into ``units.bin`` of each
  manifest row, in manifest order; ``ids.json``: the utterance ids in that order;
* ``meta.json``: ``num_units``, ``downsample_rate``, the dtype, the tokenizer fingerprint,
  the manifest digest, the key and its parts, creation time and compute seconds.

The key is the SHA-256 of the cache format version, :func:`tokenizer_fingerprint` (content
of the tokenizer's config and every tensor: feature source, layer, pooling, k, centroids,
encoder weights) and :meth:`~speechssl.data.manifest.Manifest.digest` (ids, paths,
durations, file sizes and mtimes), so a new tokenizer or an edited corpus is relabelled
and an identical request is read back. The entry follows the content-addressed protocol
of :func:`speechssl.storage.cached_entry`: written into a temporary folder and renamed
into place when complete; an error leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from speechssl.data import AudioDataset, DurationBatchSampler, Manifest, build_dataloader, default_cache_dir
from speechssl.models.units import UnitTokenizer
from speechssl.progress import Progress
from speechssl.storage import IDS_FILE, META_FILE, cached_entry, read_json
from speechssl.upstream.base import state_fingerprint

LABELS_FORMAT_VERSION = 1
UNITS_FILE = "units.bin"
INDEX_FILE = "index.npy"


def tokenizer_fingerprint(tokenizer: UnitTokenizer) -> str:
    """SHA-256 over the tokenizer's config and every tensor of its state (centroids, logits, encoder)."""
    return state_fingerprint(tokenizer, tokenizer.config)


def units_dtype(num_units: int) -> np.dtype:
    """The smallest of int16 and int32 holding unit indices ``0 .. num_units − 1`` (and ``-1``)."""
    return np.dtype("<i2") if num_units <= np.iinfo(np.int16).max else np.dtype("<i4")


@torch.no_grad()
def iter_units(
    tokenizer: UnitTokenizer,
    manifest: Manifest,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[int, np.ndarray]]:
    """``(manifest row, units (frames,) int64)`` of every utterance, in batch (duration) order."""
    tokenizer = tokenizer.to(device)
    row_of = {utt_id: row for row, utt_id in enumerate(manifest.ids)}
    dataset = AudioDataset(manifest, sample_rate=tokenizer.sample_rate)
    sampler = DurationBatchSampler(manifest.durations, max_batch_seconds=max_batch_seconds, shuffle=False)
    with Progress(len(manifest), "units label", "utterances") as progress:
        for batch in build_dataloader(dataset, sampler, num_workers=num_workers):
            sequence = tokenizer(batch.waveforms.to(device), batch.lengths.to(device))
            units = sequence.units.cpu().numpy()  # (batch, frames)
            for item, (utt_id, length) in enumerate(zip(batch.ids, sequence.lengths.tolist(), strict=True)):
                yield row_of[utt_id], units[item, :length]
            progress.update(len(batch.ids))


class UnitLabels(Mapping[str, np.ndarray]):
    """The stored units of a corpus: ``labels[utt_id]`` is a read-only ``(frames,)`` memory-mapped view.

    Iterating gives the utterance ids in manifest order.

    Args:
        entry: an entry folder written by :func:`label_corpus`.
        hit: whether the entry was read back rather than computed by this request.

    Attributes:
        num_units, downsample_rate, sample_rate, fingerprint, manifest_digest: from ``meta.json``.
        ids: utterance ids in manifest order.
        index: ``(utterances, 2)`` int64 ``(offset, length)`` of each utterance.
    """

    def __init__(self, entry: str | Path, hit: bool = False) -> None:
        self.entry = Path(entry)
        self.hit = hit
        self.meta: dict[str, Any] = read_json(self.entry / META_FILE)
        self.ids: list[str] = read_json(self.entry / IDS_FILE)
        self.index = np.load(self.entry / INDEX_FILE)
        if self.index.shape != (len(self.ids), 2):
            raise ValueError(
                f"{self.entry / INDEX_FILE}: expected shape ({len(self.ids)}, 2), found {self.index.shape}"
            )
        dtype = np.dtype(self.meta["dtype"])
        total = int(self.meta["total_frames"])
        size = (self.entry / UNITS_FILE).stat().st_size
        if size != total * dtype.itemsize:
            raise ValueError(
                f"{self.entry / UNITS_FILE}: expected {total} {dtype} units ({total * dtype.itemsize} bytes), "
                f"found {size} bytes"
            )
        if total:
            self.units = np.memmap(self.entry / UNITS_FILE, dtype=dtype, mode="r", shape=(total,))
        else:
            self.units = np.zeros(0, dtype=dtype)
        self._row = {utt_id: row for row, utt_id in enumerate(self.ids)}

    @property
    def num_units(self) -> int:
        return int(self.meta["num_units"])

    @property
    def downsample_rate(self) -> int:
        """Input samples (at :attr:`sample_rate`) per unit frame."""
        return int(self.meta["downsample_rate"])

    @property
    def sample_rate(self) -> int:
        """Hz of the audio the units were computed on."""
        return int(self.meta["sample_rate"])

    @property
    def fingerprint(self) -> str:
        return str(self.meta["tokenizer"])

    @property
    def manifest_digest(self) -> str:
        return str(self.meta["manifest"])

    @property
    def lengths(self) -> np.ndarray:
        """``(utterances,)`` int64 frames of each utterance."""
        return self.index[:, 1]

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __contains__(self, utt_id: object) -> bool:
        return utt_id in self._row

    def __getitem__(self, utt_id: str) -> np.ndarray:
        if utt_id not in self._row:
            raise KeyError(f"{self.entry}: no units for utterance {utt_id!r}")
        offset, length = self.index[self._row[utt_id]]
        return self.units[offset : offset + length]

    def __repr__(self) -> str:
        return f"UnitLabels({str(self.entry)!r}, utterances={len(self)}, num_units={self.num_units})"


def _write_entry(
    folder: Path,
    tokenizer: UnitTokenizer,
    manifest: Manifest,
    max_batch_seconds: float,
    num_workers: int,
    device: torch.device | str,
) -> int:
    """Write ``units.bin`` and ``index.npy`` of ``manifest`` into ``folder``; returns the total frames."""
    dtype = units_dtype(tokenizer.num_units)
    index = np.zeros((len(manifest), 2), dtype=np.int64)
    written = 0
    with (folder / UNITS_FILE).open("wb") as handle:
        for row, units in iter_units(tokenizer, manifest, max_batch_seconds, num_workers, device):
            handle.write(units.astype(dtype).tobytes())
            index[row] = (written, len(units))
            written += len(units)
    np.save(folder / INDEX_FILE, index)
    return written


def label_corpus(
    tokenizer: UnitTokenizer,
    manifest: Manifest,
    cache_dir: str | Path | None = None,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> UnitLabels:
    """The units of every utterance of ``manifest``, read from the cache or computed and stored.

    Args:
        tokenizer: the frozen tokenizer.
        manifest: the utterances (resampled to 16 kHz, whole).
        cache_dir: folder of the entries; default ``<speechssl cache>/units``.
        max_batch_seconds: padded audio per batch.
        num_workers: DataLoader worker processes.
        device: where the tokenizer runs.

    Returns:
        the labels (``hit`` says whether they were read back).
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "units"
    fingerprint = tokenizer_fingerprint(tokenizer)
    digest = manifest.digest()
    parts = {"format": LABELS_FORMAT_VERSION, "tokenizer": fingerprint, "manifest": digest}

    def write(folder: Path) -> dict[str, Any]:
        total = _write_entry(folder, tokenizer, manifest, max_batch_seconds, num_workers, device)
        return {
            "tokenizer": fingerprint,
            "manifest": digest,
            "num_units": tokenizer.num_units,
            "downsample_rate": tokenizer.downsample_rate,
            "sample_rate": tokenizer.sample_rate,
            "dtype": units_dtype(tokenizer.num_units).str,
            "total_frames": total,
            "utterances": len(manifest),
            "features": tokenizer.config.features.source,
        }

    return cached_entry(root, parts, manifest.ids, write, UnitLabels)


__all__ = [
    "LABELS_FORMAT_VERSION",
    "UnitLabels",
    "iter_units",
    "label_corpus",
    "tokenizer_fingerprint",
    "units_dtype",
]
