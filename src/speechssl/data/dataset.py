"""Map-style dataset over a manifest, its collate function and the data loader.

Random crops are a pure function of ``(seed, epoch, index)``, so a batch is the same
whatever the number of DataLoader workers and a resumed job sees exactly the crops it
would have seen.

Bad files: with ``skip_bad=False`` a bad file raises :class:`AudioError` naming it. With
``skip_bad=True`` the dataset returns a :class:`BadFile` record in place of the item and
:func:`collate_audio` drops it (so a batch may be smaller than its indices, or empty),
warning once per file from whichever process read it. Counts kept inside the dataset do
not survive DataLoader worker processes, so the reliable summary comes from
:func:`scan_bad_files`, run once before training: ``manifest.exclude_ids(summary.ids)``
then removes the bad files up front.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from speechssl.data.audio import (
    DEFAULT_SAMPLE_RATE,
    AudioError,
    BadFile,
    BadFileSummary,
    audio_info,
    load_audio,
)
from speechssl.data.batch import AudioBatch, pad_waveforms
from speechssl.data.manifest import Manifest, Utterance
from speechssl.data.pairing import load_image


class AudioItem(NamedTuple):
    """One decoded utterance.

    Attributes:
        id: utterance id.
        waveform: ``(samples,)`` float32 mono waveform.
        labels: ``speaker`` and the manifest's label columns, name -> value.
        text: the paired text (the dataset's ``text_column``), or None.
        image: the paired ``(channels, height, width)`` image (the dataset's ``image_column``), or None.
    """

    id: str
    waveform: torch.Tensor
    labels: dict[str, str]
    text: str | None = None
    image: torch.Tensor | None = None


def crop_offset(duration: float, crop_seconds: float, seed: int, epoch: int, index: int) -> float:
    """Start (seconds) of the random crop of item ``index`` in ``epoch``; 0 if the item is short.

    Uniform over ``[0, duration - crop_seconds]``, drawn from a generator seeded by
    ``(seed, epoch, index)`` alone.
    """
    if duration <= crop_seconds:
        return 0.0
    rng = np.random.default_rng([seed, epoch, index])
    return float(rng.uniform(0.0, duration - crop_seconds))


def read_window(
    start: float | None,
    end: float | None,
    duration: float,
    crop_seconds: float | None,
    seed: int,
    epoch: int,
    index: int,
) -> tuple[float, float | None]:
    """``(offset, seconds or None to the end)`` of the file to read for an item: its segment
    ``[start, end)`` (the whole file when ``None``), randomly cropped to ``crop_seconds``."""
    base = start or 0.0
    if crop_seconds is None:
        return base, None if end is None else end - base
    return base + crop_offset(duration, crop_seconds, seed, epoch, index), crop_seconds


class AudioDataset(Dataset):
    """Utterances of a manifest as :class:`AudioItem`, optionally randomly cropped.

    Args:
        manifest: the utterances.
        sample_rate: output sample rate; files at other rates are resampled.
        crop_seconds: if set, each item is a random segment of at most this length (the
            whole utterance when shorter), re-drawn every epoch; ``None`` returns whole utterances.
        skip_bad: return a :class:`BadFile` record for a bad file instead of raising.
        seed: seed of the crops.
        text_column: the label column holding each utterance's paired text (``AudioItem.text``).
        image_column: the label column holding each utterance's paired image, a ``.npy`` or
            ``.png`` path (``AudioItem.image``, see :func:`speechssl.data.pairing.load_image`).
    """

    def __init__(
        self,
        manifest: Manifest,
        sample_rate: int = DEFAULT_SAMPLE_RATE,
        crop_seconds: float | None = None,
        skip_bad: bool = False,
        seed: int = 0,
        text_column: str | None = None,
        image_column: str | None = None,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, found {sample_rate}")
        if crop_seconds is not None and crop_seconds <= 0:
            raise ValueError(f"crop_seconds must be > 0 or None, found {crop_seconds}")
        for option, column in (("text_column", text_column), ("image_column", image_column)):
            if column is not None and column not in manifest.label_columns:
                raise ValueError(
                    f"{option}: expected a label column of the manifest "
                    f"({', '.join(manifest.label_columns) or 'none'}), found {column!r}"
                )
        self.text_column = text_column
        self.image_column = image_column
        self.manifest = manifest
        self.sample_rate = sample_rate
        self.crop_seconds = crop_seconds
        self.skip_bad = skip_bad
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch``; call before iterating a new DataLoader epoch.

        Workers receive a copy of the dataset when an epoch's iterator starts, so this
        works with non-persistent workers (as :func:`build_dataloader` makes them).
        """
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.manifest)

    def describe_item(self, index: int) -> str:
        """Item ``index`` for messages: its id and its file."""
        row = self.manifest[index]
        return f"{row.id!r} ({row.path})"

    def effective_durations(self) -> np.ndarray:
        """``(utterances,)`` seconds each item will last: ``min(duration, crop_seconds)``."""
        durations = self.manifest.durations
        return durations if self.crop_seconds is None else np.minimum(durations, self.crop_seconds)

    def __getitem__(self, index: int) -> AudioItem | BadFile:
        row = self.manifest[index]
        try:
            waveform = self._load(row, index)
        except AudioError as err:
            if not self.skip_bad:
                raise
            return BadFile(id=row.id, path=str(row.path), reason=err.reason)
        text = row.labels[self.text_column] if self.text_column is not None else None
        image = load_image(row.labels[self.image_column]) if self.image_column is not None else None
        return AudioItem(
            row.id, torch.from_numpy(waveform), {"speaker": row.speaker, **row.labels}, text, image
        )

    def _load(self, row: Utterance, index: int) -> np.ndarray:
        window = read_window(
            row.start, row.end, row.duration, self.crop_seconds, self.seed, self.epoch, index
        )
        waveform = load_audio(row.path, self.sample_rate, offset_seconds=window[0], num_seconds=window[1])
        if self.crop_seconds is None:
            return waveform
        return waveform[: round(self.crop_seconds * self.sample_rate)]  # (samples,) exact crop length


def collate_audio(items: Sequence[AudioItem | BadFile]) -> AudioBatch:
    """Zero-pad items into an :class:`AudioBatch`, dropping :class:`BadFile` records.

    Returns:
        waveforms ``(batch, max samples)``, lengths ``(batch,)`` int64, ids, one list
        per label column, and the paired text and ``(batch, channels, height, width)`` images
        when the items carry them. Empty (``(0, 0)``) when every item was bad.

    Raises:
        ValueError: the paired images differ in shape (naming two of the utterances).
    """
    good = []
    for item in items:
        if isinstance(item, BadFile):
            warnings.warn(f"skipped bad audio file {item.path} ({item.id}): {item.reason}", stacklevel=2)
        else:
            good.append(item)
    if good:
        waveforms, lengths = pad_waveforms([item.waveform for item in good])  # (batch, samples), (batch,)
    else:
        waveforms, lengths = torch.zeros(0, 0), torch.zeros(0, dtype=torch.int64)
    columns = list(good[0].labels) if good else []
    labels = {name: [item.labels[name] for item in good] for name in columns}
    text = [item.text for item in good] if good and good[0].text is not None else None
    images = None
    if good and good[0].image is not None:
        shapes = {tuple(item.image.shape): item.id for item in good}
        if len(shapes) > 1:
            (first, a), (second, b) = list(shapes.items())[:2]
            raise ValueError(
                f"paired images: expected one shape per batch, found {first} ({a}) and {second} ({b})"
            )
        images = torch.stack([item.image for item in good])  # (batch, channels, height, width)
    return AudioBatch(
        waveforms=waveforms,
        lengths=lengths,
        ids=[item.id for item in good],
        labels=labels,
        text=text,
        images=images,
    )


def build_dataloader(
    dataset: Dataset, batch_sampler: Sampler[list[int]], num_workers: int, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader yielding :class:`AudioBatch` from ``batch_sampler``'s index lists.

    Workers are not persistent, so :meth:`AudioDataset.set_epoch` reaches them each epoch.
    Workers die with the process that built the loader, even when it is SIGKILLed (see
    :func:`die_with_parent`).
    """
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, found {num_workers}")
    return DataLoader(
        dataset,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        collate_fn=collate_audio,
        pin_memory=pin_memory,
        persistent_workers=False,
        worker_init_fn=functools.partial(die_with_parent, os.getpid()) if num_workers > 0 else None,
    )


def short_utterances(
    manifest: Manifest, durations: np.ndarray, sample_rate: int, min_samples: int
) -> BadFileSummary:
    """The rows of ``manifest`` too short for an encoder, as bad files (in manifest order).

    Args:
        manifest: the utterances.
        durations: ``(utterances,)`` seconds each is read for (after any crop, e.g.
            :meth:`AudioDataset.effective_durations`).
        sample_rate: the rate they are read at.
        min_samples: the fewest samples the encoder reads (``EncoderConfig.min_samples``, the
            waveform CNN's receptive field; ``Upstream.min_samples``).
    """
    samples = np.round(np.asarray(durations, dtype=np.float64) * sample_rate).astype(
        np.int64
    )  # (utterances,)
    return BadFileSummary(
        [
            BadFile(
                id=row.id,
                path=str(row.path),
                reason=f"too short: {count} samples at {sample_rate} Hz, fewer than the {min_samples} "
                "the encoder's front-end reads (its receptive field)",
            )
            for row, count in zip(manifest, samples.tolist(), strict=True)
            if count < min_samples
        ]
    )


def header_durations(manifest: Manifest, workers: int = 4) -> tuple[np.ndarray, BadFileSummary]:
    """Each file's duration by its header (thread pool, nothing decoded), and the bad files.

    Returns:
        ``(utterances,)`` float64 seconds, NaN for a bad file (missing, not audio, 0 samples),
        and those bad files in manifest order.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, found {workers}")

    def read(row: Utterance) -> float | BadFile:
        try:
            info = audio_info(row.path)
            if info.frames == 0:
                raise AudioError(row.path, "empty audio file (0 samples)")
        except AudioError as err:
            return BadFile(id=row.id, path=str(row.path), reason=err.reason)
        return info.duration

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(read, manifest))
    durations = np.array([np.nan if isinstance(r, BadFile) else r for r in results], dtype=np.float64)
    return durations, BadFileSummary([r for r in results if isinstance(r, BadFile)])


_PR_SET_PDEATHSIG = 1  # prctl option, linux/prctl.h


def die_with_parent(parent_pid: int, worker_id: int = 0) -> None:
    """``worker_init_fn``: make this DataLoader worker die as soon as ``parent_pid`` does.

    PyTorch's workers notice a dead parent only when they next poll their queue (and a
    SIGKILLed parent never tells them), so they can outlive it holding their memory. On
    Linux the kernel sends SIGKILL to this process when its parent exits
    (``prctl(PR_SET_PDEATHSIG)``); the parent may already have died between the fork and
    this call, which the check against ``parent_pid`` (recorded before the fork) catches.
    Elsewhere PyTorch's own watchdog remains the only guard.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed in a DataLoader worker")
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def scan_bad_files(manifest: Manifest, workers: int = 2, decode: bool = True) -> BadFileSummary:
    """Check every file of ``manifest`` once (thread pool) and list the bad ones, in manifest order.

    Args:
        manifest: the utterances to check.
        workers: threads (decoding releases the GIL).
        decode: decode every file fully (finds truncated data and NaNs); ``False`` only
            reads the headers, which is much faster but finds only missing and non-audio files.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, found {workers}")

    def check(row: Utterance) -> BadFile | None:
        try:
            if decode:
                load_audio(row.path, target_sr=None)
            elif audio_info(row.path).frames == 0:
                raise AudioError(row.path, "empty audio file (0 samples)")
        except AudioError as err:
            return BadFile(id=row.id, path=str(row.path), reason=err.reason)
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(check, manifest))
    return BadFileSummary([bad for bad in results if bad is not None])
