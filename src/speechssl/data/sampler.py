"""Batches bounded by padded audio duration, with length bucketing and DDP sharding.

Variable-length speech batched by count wastes compute on padding and memory on the
longest batches; batching by total *padded* duration (``len(batch) * longest item``)
keeps every batch at a similar cost, as in fairseq's ``batch_by_size`` with
``max_tokens`` (Ott et al., *fairseq*, NAACL 2019 demo) and ESPnet's length-bucketed
iterators. Sorting by length inside large shuffled buckets keeps padding low while the
epoch stays well shuffled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class DurationBatchSampler(Sampler[list[int]]):
    """Index batches whose padded duration stays within ``max_batch_seconds``.

    Each epoch, deterministically from ``(seed, epoch)``:

    1. the indices are shuffled (kept in order when ``shuffle=False``) and cut into buckets
       of ``bucket_size_multiplier`` typical batches (``max_batch_seconds`` / mean duration items);
    2. each bucket is sorted by duration and packed greedily: an item joins the current
       batch while ``(len(batch) + 1) * max duration <= max_batch_seconds``; an item longer
       than the bound alone forms its own batch; a bucket's last batch with fewer than
       ``min_batch_size`` items is left out of this epoch (with shuffling its items fall in
       other buckets in other epochs);
    3. so that every rank gets the same number of batches, the count is made divisible by
       ``num_replicas``: with ``drop_last`` the surplus batches are dropped, otherwise the
       largest batches are split in two (which keeps the bound and every index exactly once,
       and never leaves a half below ``min_batch_size``);
       only if every batch is a single item are batches from the start repeated;
    4. the batch order is shuffled (if ``shuffle``) and rank ``r`` takes batches ``r, r + R, ...``.

    Args:
        durations: ``(utterances,)`` seconds of each item as it will be loaded (already
            ``min(duration, crop)`` when cropping).
        max_batch_seconds: bound on ``len(batch) * max duration in batch``.
        shuffle: shuffle items and batch order each epoch.
        seed: seed of the shuffles.
        bucket_size_multiplier: typical batches per sorting bucket; larger means less
            padding but less randomness.
        drop_last: drop surplus batches instead of splitting batches to balance ranks.
        min_batch_size: fewest items per batch, for objectives that need batch statistics
            (Barlow Twins' cross-correlation and batch norm need 2).
        num_replicas: number of data-parallel ranks.
        rank: this process's rank in ``[0, num_replicas)``.
    """

    def __init__(
        self,
        durations: Sequence[float] | np.ndarray,
        max_batch_seconds: float,
        shuffle: bool = True,
        seed: int = 0,
        bucket_size_multiplier: int = 100,
        drop_last: bool = False,
        min_batch_size: int = 1,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        durations = np.asarray(durations, dtype=np.float64)
        if durations.ndim != 1:
            raise ValueError(f"durations must be (utterances,), found shape {durations.shape}")
        if not (np.isfinite(durations).all() and (durations >= 0).all()):
            raise ValueError("durations must be finite and >= 0")
        if not max_batch_seconds > 0:
            raise ValueError(f"max_batch_seconds must be > 0, found {max_batch_seconds}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, found {seed}")
        if bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be >= 1, found {bucket_size_multiplier}")
        if num_replicas < 1:
            raise ValueError(f"num_replicas must be >= 1, found {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), found {rank}")
        if min_batch_size < 1:
            raise ValueError(f"min_batch_size must be >= 1, found {min_batch_size}")
        if min_batch_size > 1 and len(durations) < min_batch_size * num_replicas:
            raise ValueError(
                f"expected at least min_batch_size x ranks = {min_batch_size * num_replicas} items, "
                f"found {len(durations)}"
            )
        if min_batch_size > 1 and min_batch_size * durations.max() > max_batch_seconds:
            raise ValueError(
                f"max_batch_seconds: expected at least {min_batch_size} x the longest item "
                f"({durations.max():.2f} s) so that every batch can hold {min_batch_size} items, "
                f"found {max_batch_seconds} (crop the audio or raise the bound)"
            )
        self.durations = durations
        self.max_batch_seconds = float(max_batch_seconds)
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_size_multiplier = bucket_size_multiplier
        self.drop_last = drop_last
        self.min_batch_size = min_batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0
        self._cached: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select ``epoch``'s batches, skipping this rank's first ``start_batch`` (to resume mid-epoch)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, found {epoch}")
        if start_batch < 0:
            raise ValueError(f"start_batch must be >= 0, found {start_batch}")
        self.epoch = epoch
        available = len(self.rank_batches())
        if start_batch > available:
            raise ValueError(f"start_batch {start_batch} is past the {available} batches of epoch {epoch}")
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.rank_batches()[self.start_batch :]

    def __len__(self) -> int:
        """Batches the next iteration yields (this rank's, minus the skipped ``start_batch``)."""
        return len(self.rank_batches()) - self.start_batch

    def rank_batches(self) -> list[list[int]]:
        """All of this rank's batches of the current epoch, ignoring ``start_batch``."""
        return self.epoch_batches()[self.rank :: self.num_replicas]

    def epoch_batches(self) -> list[list[int]]:
        """Every rank's batches of the current epoch, in order (cached per epoch)."""
        if self._cached is None or self._cached[0] != self.epoch:
            self._cached = (self.epoch, self._make_batches(self.epoch))
        return self._cached[1]

    def _make_batches(self, epoch: int) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, epoch])
        count = len(self.durations)
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        mean = float(self.durations.mean()) if count else 0.0
        typical = count if mean == 0 else max(1, int(self.max_batch_seconds // mean))
        bucket = max(1, typical * self.bucket_size_multiplier)
        batches: list[list[int]] = []
        for start in range(0, count, bucket):
            chunk = order[start : start + bucket]
            batches.extend(self._pack(chunk[np.argsort(self.durations[chunk], kind="stable")]))
        surplus = len(batches) % self.num_replicas
        if surplus and not self.drop_last:
            batches = self._balance(batches)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if surplus and self.drop_last:
            batches = batches[: len(batches) - surplus]
        return batches

    def _pack(self, ascending: np.ndarray) -> list[list[int]]:
        """Greedy packing of indices sorted by increasing duration."""
        batches: list[list[int]] = []
        current: list[int] = []
        for index in ascending.tolist():
            if current and (len(current) + 1) * self.durations[index] > self.max_batch_seconds:
                batches.append(current)
                current = []
            current.append(index)
        if len(current) >= self.min_batch_size:
            batches.append(current)
        return batches

    def _balance(self, batches: list[list[int]]) -> list[list[int]]:
        """Split the largest batches (or, when none can be split, repeat some) until divisible."""
        batches = list(batches)
        original = len(batches)
        while len(batches) % self.num_replicas:
            largest = max(range(len(batches)), key=lambda i: len(batches[i]))
            if len(batches[largest]) >= 2 * self.min_batch_size:
                half = len(batches[largest]) // 2
                batches[largest : largest + 1] = [batches[largest][:half], batches[largest][half:]]
            else:
                batches.append(batches[len(batches) % original])
        return batches
