"""Frozen upstream features computed once, stored on disk as float16 and memory-mapped.

Every downstream evaluation of a frozen upstream reads the same features: probe epochs,
learning-rate sweeps, seeds and tasks differ only downstream. :class:`FeatureCache` runs
the upstream once per (upstream, layers, corpus, preprocessing) and keeps the result as
``.npy`` files opened with ``np.load(mmap_mode="r")``, so later runs page in what they read
instead of rerunning the upstream or holding every feature in memory.

Two kinds of entry:

* ``pooled`` (utterance tasks): statistics pooling per layer, the masked mean and the
  standard deviation over each utterance's valid frames (x-vector pooling, Snyder et al.
  2018, §2.2), as two arrays ``mean.npy`` and ``std.npy`` of shape ``(layers, utterances,
  dim)``; probes that only need means never read the standard deviations.
* ``frames`` (frame tasks: ASR, query-by-example): every valid frame of the chosen layers,
  ``frames.npy`` ``(total_frames, layers, dim)`` with ``offsets.npy`` ``(utterances + 1,)``
  int64, utterance ``i`` being rows ``offsets[i]:offsets[i + 1]``.

Rows are in manifest order. Layers of different widths are zero-padded to the widest.

The key is the SHA-256 of a JSON of everything the stored numbers depend on: the cache
format version, the kind, :meth:`~speechssl.upstream.base.Upstream.fingerprint` (a content
hash of the upstream's config and weights, not its file name), the layer indices, a digest
of the manifest (ids, absolute paths, durations and sample rates in order, and each audio
file's size and ``mtime_ns``, so an edited file recomputes) and the preprocessing (whole
utterances, mono, resampled to the upstream's rate). Batch size and device are not part of
it: they change features only by float rounding, far below float16 resolution. An entry is
the folder ``<root>/<key[:2]>/<key>/`` holding the arrays, ``ids.json`` and ``meta.json``
(the key parts in readable form, creation time and compute seconds). It is written into a
temporary folder beside it and renamed into place only when complete, so an interrupted
extraction never leaves a half entry that reads as valid.

Under ``torchrun``, requests made inside :meth:`FeatureCache.split_across_ranks` are computed by
every rank together, each its share of the batches, and stored by rank 0 with the same arrays
(:mod:`speechssl.downstream.rank_extraction`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from speechssl import distributed
from speechssl.data import AudioDataset, DurationBatchSampler, Manifest, build_dataloader, default_cache_dir
from speechssl.data.audio import DEFAULT_SAMPLE_RATE
from speechssl.data.batch import lengths_to_padding_mask
from speechssl.downstream.rank_extraction import extract_across_ranks
from speechssl.models.pooling import masked_mean_std
from speechssl.progress import Progress
from speechssl.storage import (
    cached_entry,
    disk_full_error,
    entry_path,
    is_disk_full,
    reserve_space,
    staging_folder,
)
from speechssl.upstream.base import Upstream

CACHE_FORMAT_VERSION = 1
POOLED = "pooled"
FRAMES = "frames"
FLOAT16_MAX = float(np.finfo(np.float16).max)

Features = TypeVar("Features", "PooledFeatures", "FrameFeatures")


@dataclass(frozen=True)
class PooledFeatures:
    """Statistics-pooled features of an upstream's layers, one row per utterance.

    Attributes:
        ids: utterance ids, in manifest order.
        layers: the upstream layer index of each stored layer (all layers by default).
        mean: ``(layers, utterances, dim)`` float16 masked mean over valid frames.
        std: ``(layers, utterances, dim)`` float16 standard deviation over valid frames.
        hit: the features were read from the cache rather than computed by this call.
        entry: the cache entry folder, or ``None`` when they were not stored.
    """

    ids: list[str]
    layers: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    hit: bool = False
    entry: Path | None = None


@dataclass(frozen=True)
class FrameFeatures:
    """Every valid frame of an upstream's layers, utterances concatenated in manifest order.

    Attributes:
        ids: utterance ids, in manifest order.
        layers: the upstream layer index of each stored layer.
        frames: ``(total_frames, layers, dim)`` float16.
        offsets: ``(utterances + 1,)`` int64; utterance ``i`` is ``frames[offsets[i]:offsets[i + 1]]``.
        downsample_rate: input samples per frame.
        hit: the features were read from the cache rather than computed by this call.
        entry: the cache entry folder, or ``None`` when they were not stored.
        sample_rate: input samples per second (the upstream's).
    """

    ids: list[str]
    layers: tuple[int, ...]
    frames: np.ndarray
    offsets: np.ndarray
    downsample_rate: int
    hit: bool = False
    entry: Path | None = None
    sample_rate: int = DEFAULT_SAMPLE_RATE

    def frames_in(self, seconds: float) -> int:
        """Frames that ``seconds`` of input make (at least 1)."""
        return max(1, round(seconds * self.sample_rate / self.downsample_rate))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        """``(utterances,)`` int64 valid frames of each utterance."""
        return np.diff(self.offsets)

    def utterance(self, index: int) -> np.ndarray:
        """``(frames, layers, dim)`` float16 frames of utterance ``index`` (a memory-mapped view)."""
        if not -len(self) <= index < len(self):
            raise IndexError(
                f"utterance index: expected an integer in [{-len(self)}, {len(self)}), found {index}"
            )
        index %= len(self)
        return self.frames[self.offsets[index] : self.offsets[index + 1]]


@dataclass
class CacheStats:
    """What a :class:`FeatureCache` did since it was created.

    Attributes:
        hits: requests answered from a stored entry (the upstream did not run).
        misses: requests that ran the upstream (stored, unless the cache is disabled).
        compute_seconds: time spent running the upstream and writing features.
    """

    hits: int = 0
    misses: int = 0
    compute_seconds: float = 0.0


def resolve_layers(layers: Sequence[int] | None, num_layers: int) -> tuple[int, ...]:
    """``layers`` as non-negative indices into ``num_layers`` layers; ``None`` means all of them."""
    if layers is None:
        return tuple(range(num_layers))
    resolved = []
    for layer in layers:
        if not -num_layers <= layer < num_layers:
            raise ValueError(
                f"layers: expected indices in [{-num_layers}, {num_layers}) of the upstream's "
                f"{num_layers} layers, found {layer}"
            )
        resolved.append(layer % num_layers)
    if not resolved or len(set(resolved)) != len(resolved):
        raise ValueError(f"layers: expected distinct layer indices (at least one), found {list(layers)}")
    return tuple(resolved)


def _float16(values: torch.Tensor, what: str) -> np.ndarray:
    """``values`` as a float16 array, refusing values float16 cannot hold."""
    array = values.detach().float().cpu().numpy()
    if not np.isfinite(array).all() or (array.size and np.abs(array).max() > FLOAT16_MAX):
        raise ValueError(
            f"{what}: features must be finite and within the float16 range (|x| <= {FLOAT16_MAX:g}) "
            f"to be cached, found max |x| = {np.abs(array).max():g}"
        )
    return array.astype(np.float16)


def extraction_batches(manifest: Manifest, max_batch_seconds: float) -> list[list[int]]:
    """The batches (manifest rows) extraction runs ``manifest`` in: sorted by duration, unshuffled,
    at most ``max_batch_seconds`` of padded audio each; the same in one process and across ranks."""
    return list(DurationBatchSampler(manifest.durations, max_batch_seconds=max_batch_seconds, shuffle=False))


@torch.no_grad()
def _batches(
    upstream: Upstream,
    manifest: Manifest,
    layers: tuple[int, ...],
    max_batch_seconds: float,
    num_workers: int,
    device: torch.device | str,
    batches: Sequence[Sequence[int]] | None = None,
) -> Iterator[tuple[list[int], list[torch.Tensor], torch.Tensor]]:
    """Run ``upstream`` over ``manifest`` once, batch by batch (``batches`` of manifest rows;
    default :func:`extraction_batches`).

    Yields:
        manifest rows of the batch, the chosen layers' hidden states (each ``(batch,
        frames, dim)`` float32 on ``device``) and their valid frames ``(batch,)``.
    """
    upstream = upstream.to(device).eval()
    dataset = AudioDataset(manifest, sample_rate=upstream.sample_rate)
    sampler = extraction_batches(manifest, max_batch_seconds) if batches is None else batches
    row_of = {utt_id: row for row, utt_id in enumerate(manifest.ids)}
    with Progress(len(manifest), f"features {upstream.name}", "utterances") as progress:
        for batch in build_dataloader(dataset, sampler, num_workers=num_workers):
            batch = batch.to(device)
            output = upstream(batch.waveforms, batch.lengths)
            if len(output.hidden_states) != upstream.num_layers:
                raise ValueError(
                    f"upstream {upstream.name!r}: expected {upstream.num_layers} hidden states "
                    f"(num_layers), found {len(output.hidden_states)}"
                )
            hidden = [output.hidden_states[layer].float() for layer in layers]
            yield [row_of[utt_id] for utt_id in batch.ids], hidden, output.lengths.to(device)
            progress.update(len(batch.ids))


def _fill_pooled(
    batches: Iterator[tuple[list[int], list[torch.Tensor], torch.Tensor]],
    layers: tuple[int, ...],
    mean: np.ndarray,
    std: np.ndarray,
    name: str,
) -> None:
    """Write the statistics of every batch into ``mean`` and ``std`` ``(layers, utterances, dim)``."""
    for rows, hidden, lengths in batches:
        for position, (layer, states) in enumerate(zip(layers, hidden, strict=True)):
            dim = states.shape[-1]
            statistics = _float16(
                masked_mean_std(states, lengths, eps=0.0), f"upstream {name!r} layer {layer}"
            )
            mean[position, rows, :dim] = statistics[:, :dim]
            std[position, rows, :dim] = statistics[:, dim:]


def _write_frames(
    batches: Iterator[tuple[list[int], list[torch.Tensor], torch.Tensor]],
    layers: tuple[int, ...],
    num_utterances: int,
    dim: int,
    folder: Path,
    name: str,
) -> None:
    """Write ``frames.npy`` ``(total_frames, layers, dim)`` and ``offsets.npy`` into ``folder``.

    ``frames.npy`` is allocated in full before it is mapped
    (:func:`~speechssl.storage.reserve_space`), so a full disk is an ``OSError``, never SIGBUS.

    Batches arrive in duration order, not manifest order, and frame counts are known only
    once the upstream has run, so each batch's frames are first appended to a scratch file;
    they are then copied, utterance by utterance, into the preallocated ``frames.npy`` in
    manifest order. Memory stays bounded by one batch; disk peaks at twice the frames.
    """
    scratch = folder / "frames.unordered"
    starts = np.zeros(num_utterances, dtype=np.int64)
    counts = np.zeros(num_utterances, dtype=np.int64)
    _write_scratch(batches, layers, dim, scratch, name, starts, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    total = int(offsets[-1])
    frames = np.lib.format.open_memmap(
        folder / "frames.npy", mode="w+", dtype=np.float16, shape=(total, len(layers), dim)
    )
    reserve_space(folder / "frames.npy", f"feature cache entry of {name!r}")
    if total:
        unordered = np.memmap(scratch, dtype=np.float16, mode="r", shape=(total, len(layers), dim))
        for row in range(num_utterances):
            frames[offsets[row] : offsets[row + 1]] = unordered[starts[row] : starts[row] + counts[row]]
        del unordered
    frames.flush()
    del frames
    scratch.unlink()
    np.save(folder / "offsets.npy", offsets)


@contextlib.contextmanager
def _disk_full_named(folder: Path, needed: int, name: str) -> Iterator[None]:
    """Turn a full disk while writing entry ``folder`` (about ``needed`` bytes) into an
    ``OSError`` naming the cache folder and the bytes needed."""
    try:
        yield
    except OSError as error:
        if is_disk_full(error, folder.parent, needed):
            raise disk_full_error(folder.parent, needed, f"feature cache entry of {name!r}") from error
        raise


def _write_scratch(
    batches: Iterator[tuple[list[int], list[torch.Tensor], torch.Tensor]],
    layers: tuple[int, ...],
    dim: int,
    scratch: Path,
    name: str,
    starts: np.ndarray,
    counts: np.ndarray,
) -> None:
    """Append every batch's valid frames to ``scratch``, noting each row's start and count."""
    written = 0
    with scratch.open("wb") as handle:
        for rows, hidden, lengths in batches:
            # (batch, frames, layers, dim), narrower layers zero-padded
            stacked = hidden[0].new_zeros(*hidden[0].shape[:2], len(layers), dim)
            for position, states in enumerate(hidden):
                stacked[:, :, position, : states.shape[-1]] = states
            valid = ~lengths_to_padding_mask(lengths, stacked.shape[1])  # (batch, frames)
            # (valid frames of the batch, layers, dim), utterance after utterance
            block = _float16(stacked[valid], f"upstream {name!r} layers {list(layers)}")
            handle.write(block.tobytes())
            for row, count in zip(rows, lengths.tolist(), strict=True):
                starts[row], counts[row] = written, count
                written += count


ASSEMBLY_ROWS = 4096  # utterances copied at a time when assembling pooled shares


def _assemble_pooled(folder: Path, parts: list[tuple[Path, np.ndarray]], shape: tuple[int, int, int]) -> None:
    """Write ``mean.npy`` and ``std.npy`` ``(layers, utterances, dim)`` into ``folder`` from ranks' shares.

    Each part is ``(share folder, its manifest rows)``, the folder holding the same two arrays
    ``(layers, share rows, dim)``; the values are copied unchanged, ``ASSEMBLY_ROWS`` rows at a time.
    """
    for name in ("mean.npy", "std.npy"):
        whole = np.lib.format.open_memmap(folder / name, mode="w+", dtype=np.float16, shape=shape)
        reserve_space(folder / name, "feature cache entry (assembled from ranks' shares)")
        for part, rows in parts:
            values = np.load(part / name, mmap_mode="r")  # (layers, share rows, dim)
            for start in range(0, len(rows), ASSEMBLY_ROWS):
                chunk = slice(start, start + ASSEMBLY_ROWS)
                whole[:, rows[chunk]] = values[:, chunk]
            del values
        whole.flush()
        del whole


def _assemble_frames(
    folder: Path, parts: list[tuple[Path, np.ndarray]], num_utterances: int, width: tuple[int, int]
) -> None:
    """Write ``frames.npy`` ``(total_frames, layers, dim)`` and ``offsets.npy`` into ``folder`` from
    ranks' shares, each ``(share folder, its manifest rows)`` holding its own frames and offsets."""
    counts = np.zeros(num_utterances, dtype=np.int64)
    for part, rows in parts:
        counts[rows] = np.diff(np.load(part / "offsets.npy"))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    frames = np.lib.format.open_memmap(
        folder / "frames.npy", mode="w+", dtype=np.float16, shape=(int(offsets[-1]), *width)
    )
    reserve_space(folder / "frames.npy", "feature cache entry (assembled from ranks' shares)")
    for part, rows in parts:
        share_offsets = np.load(part / "offsets.npy")
        if not share_offsets[-1]:
            continue
        values = np.load(part / "frames.npy", mmap_mode="r")  # (share frames, layers, dim)
        for position, row in enumerate(rows):
            frames[offsets[row] : offsets[row + 1]] = values[
                share_offsets[position] : share_offsets[position + 1]
            ]
        del values
    frames.flush()
    del frames
    np.save(folder / "offsets.npy", offsets)


class FeatureCache:
    """Frozen features on disk, keyed by upstream content, layers, corpus and preprocessing.

    Args:
        root: folder of the entries; default ``<speechssl cache>/features`` (see
            :func:`~speechssl.data.config.default_cache_dir`).
        enabled: ``False`` computes every request and stores nothing (``--no-cache``): pooled
            features stay in memory; frames go to a scratch folder under ``root`` that is
            removed at once (the returned memory map keeps the data readable until released,
            as POSIX file systems allow).

    Attributes:
        stats: hits, misses and compute time of this instance's requests.
    """

    def __init__(self, root: str | Path | None = None, enabled: bool = True) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir() / "features"
        self.enabled = enabled
        self.stats = CacheStats()
        self._across_ranks = False

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, enabled={self.enabled})"

    @contextlib.contextmanager
    def split_across_ranks(self) -> Iterator[FeatureCache]:
        """Within this block, under a process group of several ranks (``torchrun``), every
        request is computed by all ranks together, each its share of the batches, and stored by
        rank 0 (:func:`~speechssl.downstream.rank_extraction.extract_across_ranks`): every rank
        must make the same requests in the same order. Outside it, and in one process, each
        process computes its requests alone. Yields the cache itself.

        Raises:
            ValueError: the cache is disabled while several ranks run (they hand their shares
                over through it).
        """
        if not self.enabled and distributed.world_size() > 1:
            raise ValueError(
                f"feature cache: expected it enabled to extract under torchrun (the {distributed.world_size()} "
                "ranks hand their shares to rank 0 through it), found it disabled"
            )
        self._across_ranks = True
        try:
            yield self
        finally:
            self._across_ranks = False

    def entry_path(self, key: str) -> Path:
        """The folder of the entry with hex ``key``."""
        return entry_path(self.root, key)

    def pooled(
        self,
        upstream: Upstream,
        manifest: Manifest,
        layers: Sequence[int] | None = None,
        max_batch_seconds: float = 60.0,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
    ) -> PooledFeatures:
        """Mean and standard deviation over valid frames of ``layers`` (default all) per utterance.

        Read from the cache when an entry with the same key exists; otherwise ``upstream``
        runs once over ``manifest`` (whole utterances, ``max_batch_seconds`` of padded audio
        per batch, on ``device``) and the result is stored.
        """
        chosen = resolve_layers(layers, upstream.num_layers)
        if not self.enabled:
            start = time.perf_counter()
            features = compute_pooled(upstream, manifest, chosen, max_batch_seconds, num_workers, device)
            self._count_miss(time.perf_counter() - start)
            return features
        dim = max(upstream.hidden_sizes[layer] for layer in chosen)

        def write(folder: Path, part: Manifest = manifest, plan: list[list[int]] | None = None) -> None:
            shape = (len(chosen), len(part), dim)
            needed = 2 * int(np.prod(shape)) * np.dtype(np.float16).itemsize
            with _disk_full_named(folder, needed, upstream.name):
                write_arrays(folder, shape, part, plan)

        def write_arrays(
            folder: Path, shape: tuple[int, int, int], part: Manifest, plan: list[list[int]] | None
        ) -> None:
            mean = np.lib.format.open_memmap(folder / "mean.npy", mode="w+", dtype=np.float16, shape=shape)
            std = np.lib.format.open_memmap(folder / "std.npy", mode="w+", dtype=np.float16, shape=shape)
            for array in ("mean.npy", "std.npy"):
                reserve_space(folder / array, f"feature cache entry of {upstream.name!r}")
            batches = _batches(upstream, part, chosen, max_batch_seconds, num_workers, device, plan)
            _fill_pooled(batches, chosen, mean, std, upstream.name)
            mean.flush()
            std.flush()

        def read(folder: Path, hit: bool) -> PooledFeatures:
            mean = np.load(folder / "mean.npy", mmap_mode="r")
            std = np.load(folder / "std.npy", mmap_mode="r")
            if mean.shape != (len(chosen), len(manifest), dim) or std.shape != mean.shape:
                raise ValueError(
                    f"{folder}: expected pooled arrays of shape {(len(chosen), len(manifest), dim)}, "
                    f"found mean {mean.shape} and std {std.shape}"
                )
            return PooledFeatures(manifest.ids, chosen, mean, std, hit=hit, entry=folder)

        def assemble(folder: Path, parts: list[tuple[Path, np.ndarray]]) -> None:
            _assemble_pooled(folder, parts, (len(chosen), len(manifest), dim))

        return self._cached(POOLED, upstream, manifest, chosen, write, read, max_batch_seconds, assemble)

    def frames(
        self,
        upstream: Upstream,
        manifest: Manifest,
        layers: Sequence[int] | None = None,
        max_batch_seconds: float = 60.0,
        num_workers: int = 0,
        device: torch.device | str = "cpu",
    ) -> FrameFeatures:
        """Every valid frame of ``layers`` (default all) of every utterance, memory-mapped.

        Read from the cache when an entry with the same key exists; otherwise ``upstream``
        runs once over ``manifest`` and the frames are written batch by batch (memory stays
        bounded by one batch). Choose ``layers`` for large corpora: the entry holds
        ``total_frames * layers * dim`` float16 values.
        """
        chosen = resolve_layers(layers, upstream.num_layers)
        dim = max(upstream.hidden_sizes[layer] for layer in chosen)

        def write(folder: Path, part: Manifest = manifest, plan: list[list[int]] | None = None) -> None:
            batches = _batches(upstream, part, chosen, max_batch_seconds, num_workers, device, plan)
            frames = int(part.durations.sum() * upstream.sample_rate) // upstream.downsample_rate + 1
            needed = 2 * frames * len(chosen) * dim * np.dtype(np.float16).itemsize  # scratch + frames.npy
            with _disk_full_named(folder, needed, upstream.name):
                _write_frames(batches, chosen, len(part), dim, folder, upstream.name)

        def read(folder: Path, hit: bool) -> FrameFeatures:
            frames = np.load(folder / "frames.npy", mmap_mode="r")
            offsets = np.load(folder / "offsets.npy")
            if (
                offsets.shape != (len(manifest) + 1,)
                or frames.shape[1:] != (len(chosen), dim)
                or offsets[-1] != frames.shape[0]
            ):
                raise ValueError(
                    f"{folder}: expected frames (total_frames, {len(chosen)}, {dim}) and offsets "
                    f"({len(manifest) + 1},) ending at total_frames, found {frames.shape} and {offsets.shape}"
                )
            return FrameFeatures(
                manifest.ids,
                chosen,
                frames,
                offsets,
                upstream.downsample_rate,
                hit,
                folder,
                upstream.sample_rate,
            )

        if not self.enabled:
            start = time.perf_counter()
            with staging_folder(self.root / "scratch") as scratch:
                write(scratch)
                features = read(scratch, hit=False)
            self._count_miss(time.perf_counter() - start)
            return replace(features, entry=None)

        def assemble(folder: Path, parts: list[tuple[Path, np.ndarray]]) -> None:
            _assemble_frames(folder, parts, len(manifest), (len(chosen), dim))

        return self._cached(FRAMES, upstream, manifest, chosen, write, read, max_batch_seconds, assemble)

    def _count_miss(self, seconds: float) -> None:
        self.stats.misses += 1
        self.stats.compute_seconds += seconds

    def _cached(
        self,
        kind: str,
        upstream: Upstream,
        manifest: Manifest,
        layers: tuple[int, ...],
        write: Callable[..., None],
        read: Callable[[Path, bool], Features],
        max_batch_seconds: float,
        assemble: Callable[[Path, list[tuple[Path, np.ndarray]]], None],
    ) -> Features:
        """Read the entry of this request, or compute it with ``write`` and store it atomically
        (across ranks inside :meth:`split_across_ranks`: ``write`` a share, ``assemble`` the shares)."""
        parts = {
            "format": CACHE_FORMAT_VERSION,
            "kind": kind,
            "upstream": upstream.fingerprint(),
            "layers": list(layers),
            "manifest": manifest.digest(),
            "preprocessing": {"sample_rate": upstream.sample_rate, "audio": "whole utterance, mono"},
        }

        meta = {
            "upstream_name": upstream.name,
            "hidden_sizes": [upstream.hidden_sizes[layer] for layer in layers],
            "downsample_rate": upstream.downsample_rate,
            "utterances": len(manifest),
            "total_seconds": float(manifest.durations.sum()),
        }

        def write_entry(folder: Path) -> dict[str, Any]:
            write(folder)
            return meta

        start = time.perf_counter()
        if self._across_ranks and distributed.world_size() > 1:
            batches = extraction_batches(manifest, max_batch_seconds)
            features = extract_across_ranks(self.root, parts, manifest, batches, write, assemble, read, meta)
        else:
            features = cached_entry(self.root, parts, manifest.ids, write_entry, read)
        if features.hit:
            self.stats.hits += 1
        else:
            self._count_miss(time.perf_counter() - start)
        return features


def compute_pooled(
    upstream: Upstream,
    manifest: Manifest,
    layers: Sequence[int] | None = None,
    max_batch_seconds: float = 60.0,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
) -> PooledFeatures:
    """:meth:`FeatureCache.pooled` without a cache: computed in memory, the same float16 values."""
    chosen = resolve_layers(layers, upstream.num_layers)
    shape = (len(chosen), len(manifest), max(upstream.hidden_sizes[layer] for layer in chosen))
    mean, std = np.zeros(shape, dtype=np.float16), np.zeros(shape, dtype=np.float16)
    batches = _batches(upstream, manifest, chosen, max_batch_seconds, num_workers, device)
    _fill_pooled(batches, chosen, mean, std, upstream.name)
    mean.flags.writeable = False
    std.flags.writeable = False
    return PooledFeatures(manifest.ids, chosen, mean, std)
