"""WebDataset tar shards: writing a manifest into shards, and streaming them exactly once per epoch.

Per-file random reads stall training on network storage at 10k+ hours; sequential reads of
large tar files do not. The format is `WebDataset <https://github.com/webdataset/webdataset>`_'s
(no new format): each sample is the files ``KEY.EXT`` (the audio bytes exactly as stored,
under the file's own extension) and ``KEY.json`` (the manifest row) next to each other in a
plain tar. ``index.json`` beside the shards lists each shard's name, sample count, ids and
durations, the total duration and the source manifest's digest; it is written last, so a
folder without it is not a finished shard set (each shard is itself written atomically).

Streaming (:class:`ShardStream`), deterministically from ``(seed, epoch)``:

1. the shards are put in a seeded order; their samples, concatenated, form the epoch's
   global sequence of ``N`` positions;
2. the ``C = ranks x workers`` consumers take contiguous slices of it: consumer
   ``c = rank * workers + worker`` reads positions ``[c N / C, (c + 1) N / C)`` — a split at
   sample level, so every sample is read by exactly one consumer however the shards divide,
   and each consumer reads only about ``1 / C`` of the data (plus parts of two shards);
3. each consumer passes its slice through a seeded shuffle buffer, cuts the output into
   chunks, sorts each chunk by duration and packs it into batches bounded by padded
   duration as :class:`~speechssl.data.sampler.DurationBatchSampler` does (a chunk's last,
   partial batch is carried into the next chunk; the very last batch may be smaller than
   ``min_batch_size`` only by joining the batch before it);
4. so that every rank runs the same number of steps, a rank with fewer batches splits its
   largest ones in two (every sample still exactly once);
5. a rank's batch order takes one batch of each of its consumers in turn; a resumed epoch
   drops its first ``start_batch`` and DataLoader worker ``w`` of ``W`` reads batches
   ``w, w + W, ...`` of the rest, which the DataLoader's round-robin over its workers yields
   in order.

The plan (steps 1-5) uses only the index's durations; the audio is read sample by sample at
the byte offsets the index records (each sample's data in its tar), which within a consumer
moves forward through its slice, holding no more than one batch.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from speechssl.data.audio import AudioError, BadFile, BadFileSummary, load_audio_bytes
from speechssl.data.batch import AudioBatch
from speechssl.data.dataset import AudioItem, collate_audio, read_window
from speechssl.data.manifest import Manifest
from speechssl.storage import atomic_write, atomic_write_text, read_json

INDEX = "index.json"
FORMAT = "speechssl-webdataset-shards"
DEFAULT_SHARD_SIZE = 256 * 1024**2
DEFAULT_SHUFFLE_BUFFER = 1000
CHUNK = 256  # samples sorted and packed together (step 3)


def parse_size(text: str) -> int:
    """``"256MB"``, ``"1GB"``, ``"500kB"`` or a plain byte count → bytes (powers of 1024)."""
    found = re.fullmatch(r"\s*([0-9.]+)\s*([kmg]?b?)\s*", text.lower())
    factor = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}
    try:
        value = float(found.group(1)) * factor[found.group(2)] if found else 0.0
    except ValueError:
        value = 0.0
    if not value >= 1:
        raise ValueError(f"shard size: expected bytes like 256MB (at least 1), found {text!r}")
    return int(value)


def _row_record(manifest: Manifest, index: int) -> dict[str, Any]:
    row = manifest[index]
    return {
        "id": row.id,
        "path": str(row.path),
        "duration": row.duration,
        "sample_rate": row.sample_rate,
        "speaker": row.speaker,
        "split": row.split,
        "labels": dict(row.labels),
        "start": row.start,
        "end": row.end,
        "index": index,
    }


def _write_tar(path: Path, samples: list[tuple[str, str, bytes | None, bytes]]) -> None:
    """A sample whose audio is ``None`` (a later segment of a file already in the shard) gets only its row."""
    import webdataset

    with open(path, "wb") as stream:
        writer = webdataset.TarWriter(stream, encoder=False)
        for key, extension, audio, record in samples:
            writer.write(
                {"__key__": key, "json": record, **({extension: audio} if audio is not None else {})}
            )
        writer.close()


def _member_offsets(path: Path, audio_of: dict[str, str]) -> list[list[int]]:
    """Per sample of the tar ``path``, in order: ``[audio offset, audio size, json offset, json size]``
    in bytes, so that readers seek to the data instead of parsing every header; a sample stored
    without audio points at the audio of sample ``audio_of[key]``."""
    samples: dict[str, list[int]] = {}
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            key, _, extension = member.name.partition(".")
            slot = 2 if extension == "json" else 0
            samples.setdefault(key, [0, 0, 0, 0])[slot : slot + 2] = [member.offset_data, member.size]
    for key, source in audio_of.items():
        samples[key][0:2] = samples[source][0:2]
    return list(samples.values())


def write_shards(manifest: Manifest, output: str | Path, shard_size: int = DEFAULT_SHARD_SIZE) -> Path:
    """Write ``manifest``'s audio into WebDataset shards of about ``shard_size`` bytes in ``output``.

    Each sample holds the audio file's bytes unchanged (no re-encoding) under its extension
    and the manifest row as JSON. Segments of one recording (rows with ``start``/``end``) that
    fall in the same shard store the file once: the later ones hold only their row, and the
    index points their audio at the first one's. A shard is closed before the sample that would take it past
    ``shard_size`` (a single larger sample gets a shard of its own).

    Returns:
        The index file ``output/index.json``, written last.

    Raises:
        FileNotFoundError: an audio file of the manifest is missing (naming it).
        ValueError: ``shard_size`` < 1 or an empty manifest.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size: expected >= 1 byte, found {shard_size}")
    if not len(manifest):
        raise ValueError("manifest: expected at least one row to shard, found none")
    output = Path(output)
    digest = manifest.digest()
    (output / INDEX).unlink(missing_ok=True)  # the folder is unfinished until the new index lands
    shards: list[dict[str, Any]] = []
    pending: list[tuple[str, str, bytes, bytes]] = []
    pending_rows: list[int] = []
    first_key: dict[Path, str] = {}  # the sample holding each audio file's bytes in the open shard
    audio_of: dict[str, str] = {}  # sample stored without audio -> the sample holding its file
    size = 0

    def flush() -> None:
        name = f"shard-{len(shards):06d}.tar"
        atomic_write(output / name, lambda path: _write_tar(path, pending))
        shards.append(
            {
                "name": name,
                "count": len(pending),
                "ids": [manifest[i].id for i in pending_rows],
                "durations": [manifest[i].duration for i in pending_rows],
                "members": _member_offsets(output / name, audio_of),
            }
        )
        pending.clear()
        pending_rows.clear()
        audio_of.clear()
        first_key.clear()

    for index, row in enumerate(manifest):
        key = f"{index:09d}"
        record = json.dumps(_row_record(manifest, index)).encode()
        extension = Path(row.path).suffix.lstrip(".").lower() or "audio"
        audio = None if row.path in first_key else Path(row.path).read_bytes()
        item = (len(audio) if audio is not None else 0) + len(record) + 1536  # three tar headers
        if pending and size + item > shard_size:
            flush()
            size = 0
            audio = Path(row.path).read_bytes() if audio is None else audio
        if audio is None:
            audio_of[key] = first_key[row.path]
        else:
            first_key[row.path] = key
        pending.append((key, extension, audio, record))
        pending_rows.append(index)
        size += item
    flush()
    index_file = output / INDEX
    atomic_write_text(
        index_file,
        json.dumps(
            {
                "format": FORMAT,
                "version": 1,
                "manifest_digest": digest,
                "label_columns": list(manifest.label_columns),
                "num_samples": len(manifest),
                "total_duration": float(manifest.durations.sum()),
                "shards": shards,
            }
        ),
    )
    return index_file


@dataclass(frozen=True)
class ShardIndex:
    """A shard set's ``index.json``.

    Attributes:
        folder: the folder holding the shards.
        names: shard file names.
        ids: per shard, its samples' ids in order.
        durations: per shard, ``(samples,)`` seconds.
        members: per shard, ``(samples, 4)`` byte offset and size of the audio and of the JSON row.
        manifest_digest: digest of the manifest the shards were written from.
    """

    folder: Path
    names: tuple[str, ...]
    ids: tuple[tuple[str, ...], ...]
    durations: tuple[np.ndarray, ...]
    members: tuple[np.ndarray, ...]
    manifest_digest: str

    @classmethod
    def load(cls, path: str | Path) -> ShardIndex:
        """Read the index of a shard folder (or the index file itself), naming the file on error."""
        path = Path(path)
        index_file = path / INDEX if path.is_dir() else path
        if not index_file.is_file():
            raise ValueError(
                f"{index_file}: shard index not found (expected a folder written by `speechssl data shard`)"
            )
        try:
            data = read_json(index_file)
            shards = data["shards"]
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            return cls(
                folder=index_file.parent,
                names=tuple(shard["name"] for shard in shards),
                ids=tuple(tuple(shard["ids"]) for shard in shards),
                durations=tuple(np.asarray(shard["durations"], dtype=np.float64) for shard in shards),
                members=tuple(
                    np.asarray(shard["members"], dtype=np.int64).reshape(-1, 4) for shard in shards
                ),
                manifest_digest=str(data["manifest_digest"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{index_file}: not a speechssl shard index ({err})") from None

    @property
    def counts(self) -> list[int]:
        return [len(ids) for ids in self.ids]

    def __len__(self) -> int:
        return sum(self.counts)


def _pack(
    order: list[int], durations: np.ndarray, max_batch_seconds: float, min_batch_size: int
) -> list[list[int]]:
    """Step 3: chunks of ``order`` sorted by duration and packed greedily, partial batches carried."""
    batches: list[list[int]] = []
    carry: list[int] = []
    for start in range(0, len(order), CHUNK):
        chunk = carry + order[start : start + CHUNK]
        chunk.sort(key=lambda position: (durations[position], position))
        current: list[int] = []
        for position in chunk:
            if current and (len(current) + 1) * durations[position] > max_batch_seconds:
                batches.append(current)
                current = []
            current.append(position)
        carry = current
    if carry:
        if len(carry) < min_batch_size and batches:
            batches[-1] = batches[-1] + carry
        else:
            batches.append(carry)
    return batches


def _shuffle_buffer(positions: range, size: int, rng: np.random.Generator) -> list[int]:
    """The order a shuffle buffer of ``size`` samples emits ``positions`` in (as WebDataset's ``shuffle``)."""
    buffer: list[int] = []
    emitted: list[int] = []
    for position in positions:
        buffer.append(position)
        if len(buffer) >= size:
            pick = int(rng.integers(len(buffer)))
            buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
            emitted.append(buffer.pop())
    emitted.extend(buffer[i] for i in rng.permutation(len(buffer)))
    return emitted


@dataclass(frozen=True)
class EpochPlan:
    """One epoch's schedule (steps 1-4 of the module docstring).

    Attributes:
        shard_order: shard indices in the order their samples are concatenated.
        batches: ``batches[rank][worker]``: that consumer's batches of global positions.
    """

    shard_order: np.ndarray
    batches: list[list[list[list[int]]]]


def plan_epoch(
    index: ShardIndex,
    epoch: int,
    seed: int,
    ranks: int,
    workers: int,
    max_batch_seconds: float,
    crop_seconds: float | None,
    min_batch_size: int = 1,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
) -> EpochPlan:
    """The batches of every (rank, worker) in ``epoch``; every rank gets the same number.

    Raises:
        ValueError: the ranks cannot be balanced (a rank's batches all too small to split), or
            ``min_batch_size`` of the longest item exceed ``max_batch_seconds``.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(index.names))
    durations = np.concatenate([index.durations[s] for s in order]) if len(order) else np.zeros(0)
    if crop_seconds is not None:
        durations = np.minimum(durations, crop_seconds)
    if min_batch_size > 1 and len(durations) and min_batch_size * durations.max() > max_batch_seconds:
        raise ValueError(
            f"max_batch_seconds: expected at least {min_batch_size} x the longest item ({durations.max():.2f} s) "
            f"so that every batch can hold {min_batch_size} items, found {max_batch_seconds} "
            "(crop the audio or raise the bound)"
        )
    consumers = ranks * workers
    plan: list[list[list[list[int]]]] = []
    for rank in range(ranks):
        per_worker = []
        for worker in range(workers):
            consumer = rank * workers + worker
            positions = range(
                consumer * len(durations) // consumers, (consumer + 1) * len(durations) // consumers
            )
            emitted = _shuffle_buffer(
                positions, shuffle_buffer, np.random.default_rng([seed, epoch, consumer])
            )
            per_worker.append(_pack(emitted, durations, max_batch_seconds, min_batch_size))
        plan.append(per_worker)
    target = max(sum(len(batches) for batches in per_worker) for per_worker in plan)
    for rank, per_worker in enumerate(plan):
        while sum(len(batches) for batches in per_worker) < target:
            worker, largest = max(
                ((w, b) for w, batches in enumerate(per_worker) for b in range(len(batches))),
                key=lambda pair: (len(per_worker[pair[0]][pair[1]]), -pair[0], -pair[1]),
                default=(0, -1),
            )
            if largest < 0 or len(per_worker[worker][largest]) < 2 * min_batch_size:
                raise ValueError(
                    f"data: cannot give rank {rank} the {target} batches of the other ranks in epoch {epoch} "
                    f"(its batches are too small to split; use fewer ranks or workers, or more data)"
                )
            batch = per_worker[worker][largest]
            half = len(batch) // 2
            per_worker[worker][largest : largest + 1] = [batch[:half], batch[half:]]
    return EpochPlan(order, plan)


def interleave(batches: list[list[list[int]]]) -> list[list[int]]:
    """One batch from each list in turn, leaving out exhausted lists: a rank's batch order."""
    order: list[list[int]] = []
    for round_ in range(max((len(items) for items in batches), default=0)):
        order.extend(items[round_] for items in batches if round_ < len(items))
    return order


def _identity(batch: AudioBatch) -> AudioBatch:
    return batch


class ShardStream(IterableDataset):
    """This rank's duration-bounded :class:`AudioBatch` stream over a shard set (see the module docstring).

    Args:
        index: the shard set.
        sample_rate: output rate.
        crop_seconds: random crop length (as :class:`~speechssl.data.dataset.AudioDataset`,
            the crop drawn from ``(seed, epoch, manifest index)``); ``None`` keeps whole utterances.
        max_batch_seconds: bound on a batch's padded duration.
        skip_bad: drop an undecodable sample from its batch with a warning instead of raising.
        seed: seed of the shard order, the shuffle buffers and the crops.
        num_replicas: data-parallel ranks.
        rank: this rank.
        num_workers: DataLoader workers per rank (0 reads in the main process).
        min_batch_size: fewest items per batch.
        shuffle_buffer: samples held by each consumer's shuffle buffer.
    """

    def __init__(
        self,
        index: ShardIndex,
        sample_rate: int,
        crop_seconds: float | None,
        max_batch_seconds: float,
        skip_bad: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        num_workers: int = 0,
        min_batch_size: int = 1,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ) -> None:
        if shuffle_buffer < 1:
            raise ValueError(f"corpus_options.shuffle_buffer: expected >= 1, found {shuffle_buffer}")
        self.index = index
        self.sample_rate = sample_rate
        self.crop_seconds = crop_seconds
        self.max_batch_seconds = max_batch_seconds
        self.skip_bad = skip_bad
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.workers = max(1, num_workers)
        self.min_batch_size = min_batch_size
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self.start_batch = 0
        self._cached: tuple[int, EpochPlan] | None = None

    def effective_durations(self) -> np.ndarray:
        """``(utterances,)`` seconds each item lasts once cropped, in index order."""
        durations = np.concatenate(self.index.durations) if self.index.names else np.zeros(0)
        return durations if self.crop_seconds is None else np.minimum(durations, self.crop_seconds)

    def describe_item(self, position: int) -> str:
        """The sample at ``position`` in index order, for messages: its id and its shard."""
        for name, ids in zip(self.index.names, self.index.ids, strict=True):
            if position < len(ids):
                return f"{ids[position]!r} ({self.index.folder / name})"
            position -= len(ids)
        raise IndexError(position)

    def plan(self, epoch: int) -> EpochPlan:
        """``epoch``'s :class:`EpochPlan` (kept for the last epoch asked, and copied into the workers)."""
        if self._cached is None or self._cached[0] != epoch:
            plan = plan_epoch(
                self.index,
                epoch,
                self.seed,
                self.num_replicas,
                self.workers,
                self.max_batch_seconds,
                self.crop_seconds,
                self.min_batch_size,
                self.shuffle_buffer,
            )
            self._cached = (epoch, plan)
        return self._cached[1]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select ``epoch``, skipping this rank's first ``start_batch`` batches (to resume mid-epoch)."""
        counts = [len(batches) for batches in self.plan(epoch).batches[self.rank]]
        if start_batch > sum(counts):
            raise ValueError(f"start_batch {start_batch} is past the {sum(counts)} batches of epoch {epoch}")
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        return sum(len(batches) for batches in self.plan(self.epoch).batches[self.rank]) - self.start_batch

    def __iter__(self) -> Iterator[AudioBatch]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise ValueError(f"expected {self.workers} DataLoader workers, found {info.num_workers}")
        plan = self.plan(self.epoch)
        remaining = interleave(plan.batches[self.rank])[self.start_batch :]
        counts = np.asarray([self.index.counts[shard] for shard in plan.shard_order])
        starts = np.concatenate([[0], np.cumsum(counts)])
        files: dict[int, BinaryIO] = {}
        try:
            for batch in remaining[worker :: self.workers]:
                items = []
                for position in batch:
                    slot = int(np.searchsorted(starts, position, side="right")) - 1
                    shard = int(plan.shard_order[slot])
                    items.append(self._load(files, shard, position - int(starts[slot])))
                yield collate_audio(items)
        finally:
            for file in files.values():
                file.close()

    def _load(self, files: dict[int, BinaryIO], shard: int, local: int) -> AudioItem | BadFile:
        """Sample ``local`` of ``shard``, read at its offsets (shard files stay open, at most four)."""
        path = self.index.folder / self.index.names[shard]
        try:
            if shard not in files:
                if len(files) >= 4:
                    files.pop(next(iter(files))).close()
                files[shard] = open(path, "rb")  # noqa: SIM115 (closed by __iter__)
            file = files[shard]
            audio_offset, audio_size, json_offset, json_size = self.index.members[shard][local].tolist()
            file.seek(json_offset)
            record = json.loads(file.read(json_size))
            file.seek(audio_offset)
            audio = file.read(audio_size)
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable shard ({err})") from None
        return self._decode(record, audio)

    def _decode(self, record: dict[str, Any], audio: bytes) -> AudioItem | BadFile:
        name = f"{record['path']} (in shards of {self.index.folder})"
        try:
            offset, seconds = read_window(
                record["start"], record["end"], record["duration"], self.crop_seconds, self.seed, self.epoch,
                record["index"],
            )  # fmt: skip
            waveform = load_audio_bytes(
                audio, name, self.sample_rate, offset_seconds=offset, num_seconds=seconds
            )
            if self.crop_seconds is not None:
                waveform = waveform[: round(self.crop_seconds * self.sample_rate)]  # (samples,) exact crop
        except AudioError as err:
            if not self.skip_bad:
                raise
            return BadFile(id=record["id"], path=name, reason=err.reason)
        labels = {"speaker": record["speaker"], **record["labels"]}
        return AudioItem(record["id"], torch.from_numpy(waveform), labels)


class ShardLoaderData:
    """What the trainer reads (see :class:`speechssl.train.trainer.PretrainData`) for a shard set.

    Attributes:
        dataset: the stream; ``set_epoch(epoch, start_batch)`` selects and resumes epochs.
        loader: the DataLoader over it.
        bad_files: always empty (bad samples are dropped from their batch with a warning).
    """

    def __init__(self, dataset: ShardStream, num_workers: int) -> None:
        self.dataset = dataset
        self.sample_rate = dataset.sample_rate
        self.bad_files = BadFileSummary()
        self.loader = DataLoader(
            dataset, batch_size=None, num_workers=num_workers, collate_fn=_identity, persistent_workers=False
        )

    def loader_for_epoch(self, epoch: int, start_batch: int) -> Iterator[AudioBatch]:
        """This rank's batches of ``epoch`` from batch ``start_batch`` on (the iterator is made here)."""
        self.dataset.set_epoch(epoch, start_batch)
        return iter(self.loader)
