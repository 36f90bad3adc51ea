"""Feature extraction split over the ranks of ``torchrun``: each rank computes its share, rank 0 stores the entry.

Under ``torchrun`` (a process group of several ranks), every request a
:class:`~speechssl.downstream.cache.FeatureCache` gets inside
:meth:`~speechssl.downstream.cache.FeatureCache.split_across_ranks` is computed by all ranks
together (:func:`extract_across_ranks`); every rank must make the same requests in the same order:

1. The ranks check that they ask for the same thing (upstream fingerprint, layers, kind,
   utterance ids); the entry key is rank 0's (another node's copy of a corpus may differ from
   rank 0's only in file times, which the manifest digest reads). Rank 0 looks the entry up;
   a hit is read on every rank.
2. On a miss, the whole manifest's batches are planned exactly as one process plans them
   (:func:`~speechssl.downstream.cache.extraction_batches`) and whole batches are dealt to the
   ranks, balanced by padded duration (:func:`rank_shares`).
3. Each rank writes its share, an entry of its own rows in manifest order, into ``rank_<r>``
   of one staging folder beside the entry (``.<key>.parts.*.partial``).
4. Every rank reports success or its error; if any failed, every rank raises (the failing one
   its own error, the others :class:`RankFailedError` naming it) and rank 0 deletes the staging
   folder: nothing is committed. A rank killed outright leaves the others waiting in a
   collective until the process group's timeout (or ``torchrun`` stops them); the parts it
   leaves are a ``.partial`` folder, never an entry (:func:`~speechssl.storage.is_partial`).
5. Rank 0 assembles the parts in manifest order into a new entry and publishes it with
   :func:`~speechssl.storage.cached_entry`, atomically, as one process does; then the other
   ranks read it.

The stored arrays equal single-process extraction byte for byte on the same kind of device and
thread count: every utterance is computed in the very batch (same neighbours, same padding) it
has in one process, so the upstream runs the same operations on the same tensors, and the
``.npy`` files are written with the same headers. ``meta.json`` differs: creation time, compute
seconds and ``ranks`` (each rank's utterances and seconds). The cache folder must be one every
rank can read and write (one machine, or a file system the nodes share).

:func:`extract_on_every_rank` is how the evaluations use it: every rank runs the extraction
pass, then only rank 0 goes on to train the heads (cheap beside extraction) and write the
report; the other ranks leave.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from speechssl import distributed
from speechssl.data import Manifest
from speechssl.storage import cached_entry, content_key, entry_path, staging_folder, stored_entry

if TYPE_CHECKING:
    from speechssl.downstream.cache import FeatureCache

Entry = TypeVar("Entry")


class RankFailedError(RuntimeError):
    """Another rank failed while extracting its share; raised on the ranks that did not fail."""


@dataclass(frozen=True)
class Share:
    """The utterances one rank extracts.

    Attributes:
        rows: ``(utterances,)`` int64 manifest rows of the share, ascending.
        batches: the share's batches, as positions in ``rows``, in the order one process runs them.
        seconds: padded audio seconds of the share's batches.
    """

    rows: np.ndarray
    batches: list[list[int]]
    seconds: float


def rank_shares(batches: Sequence[Sequence[int]], durations: np.ndarray, ranks: int) -> list[Share]:
    """Deal whole ``batches`` (manifest rows) to ``ranks`` ranks, balanced by padded duration.

    Longest-processing-time-first: batches in decreasing padded seconds (``len(batch) *
    longest duration``; ties by position) each go to the rank with the least so far (ties: the
    lower rank). Deterministic, so every rank computes the same shares. Within a share, batches
    keep their order and their utterances' order.

    Args:
        batches: every batch of the manifest, each a list of manifest rows.
        durations: ``(utterances,)`` seconds of each manifest row.
        ranks: the number of ranks.

    Returns:
        one :class:`Share` per rank (possibly empty when there are fewer batches than ranks).
    """
    cost = [len(batch) * float(np.max(durations[list(batch)])) for batch in batches]
    load = [0.0] * ranks
    chosen: list[list[int]] = [[] for _ in range(ranks)]
    for index in sorted(range(len(batches)), key=lambda i: (-cost[i], i)):
        target = min(range(ranks), key=lambda r: (load[r], r))
        chosen[target].append(index)
        load[target] += cost[index]
    shares = []
    for indices, seconds in zip(chosen, load, strict=True):
        own = [list(batches[i]) for i in sorted(indices)]
        rows = np.array(sorted(row for batch in own for row in batch), dtype=np.int64)
        position = {int(row): place for place, row in enumerate(rows)}
        shares.append(Share(rows, [[position[row] for row in batch] for batch in own], seconds))
    return shares


def _request_summary(parts: Mapping[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    """What the ranks must agree on: every key part but the manifest digest, and the ids."""
    summary = {name: value for name, value in parts.items() if name != "manifest"}
    summary["ids"] = hashlib.sha256(json.dumps(list(ids)).encode()).hexdigest()
    return summary


def extract_across_ranks(
    root: Path,
    parts: Mapping[str, Any],
    manifest: Manifest,
    batches: Sequence[Sequence[int]],
    write_share: Callable[[Path, Manifest, list[list[int]]], None],
    assemble: Callable[[Path, list[tuple[Path, np.ndarray]]], None],
    read: Callable[[Path, bool], Entry],
    meta: Mapping[str, Any],
) -> Entry:
    """The cache entry of ``parts``, read if stored, else computed by every rank together (see the module).

    Every rank of the process group calls this with the same request.

    Args:
        root: the cache folder (one every rank can reach).
        parts: the entry's key parts (rank 0's are used).
        manifest: the utterances, in entry row order.
        batches: every batch of ``manifest`` (manifest rows), as one process runs them.
        write_share: ``write_share(folder, rows, batches)`` writes the entry content of the
            manifest ``rows`` (a share, in manifest order) into the new ``folder``, running the
            given ``batches`` (positions in ``rows``).
        assemble: ``assemble(folder, parts)`` writes the whole entry content into ``folder``
            from the non-empty shares' ``(part folder, manifest rows)``.
        read: opens an entry folder (``read(folder, hit)``).
        meta: further ``meta.json`` fields.

    Raises:
        ValueError: the ranks asked for different features.
        RankFailedError: another rank failed on its share (a failing rank raises its own error).
    """
    rank, size = distributed.rank(), distributed.world_size()
    requests = distributed.gather_objects(_request_summary(parts, manifest.ids))
    differing = [r for r, request in enumerate(requests) if request != requests[0]]
    if differing:
        raise ValueError(
            f"feature extraction under torchrun: expected every rank to ask for the same features "
            f"(upstream, layers, utterance ids), found rank {differing[0]} asking for "
            f"{requests[differing[0]]} and rank 0 for {requests[0]}"
        )
    parts = distributed.broadcast_object(dict(parts))
    entry = entry_path(root, content_key(parts))
    found = stored_entry(root, parts, manifest.ids, read) if rank == 0 else None
    if distributed.broadcast_object(found is not None):
        return found if rank == 0 else read(entry, True)
    shares = rank_shares(batches, manifest.durations, size)
    with contextlib.ExitStack() as stack:
        staging = (
            stack.enter_context(staging_folder(entry.with_name(f"{entry.name}.parts"))) if rank == 0 else None
        )
        staging = Path(distributed.broadcast_object(str(staging)))
        own = shares[rank]
        error: BaseException | None = None
        if len(own.rows):
            try:
                folder = staging / f"rank_{rank}"
                folder.mkdir()
                write_share(folder, manifest.select(own.rows), own.batches)
            except Exception as err:  # reported to every rank before anyone raises
                error = err
        _raise_first_failure(distributed.gather_objects(_describe(error)), error, staging)
        commit_error: BaseException | None = None
        if rank == 0:
            pieces = [
                (staging / f"rank_{r}", share.rows) for r, share in enumerate(shares) if len(share.rows)
            ]
            ranks_meta = [{"utterances": len(s.rows), "padded_seconds": round(s.seconds, 3)} for s in shares]

            def write(folder: Path) -> Mapping[str, Any]:
                assemble(folder, pieces)
                return {**meta, "ranks": ranks_meta}

            try:
                found = cached_entry(root, parts, manifest.ids, write, read)
            except Exception as err:  # reported to every rank before rank 0 raises
                commit_error = err
        failure = distributed.broadcast_object(_describe(commit_error))
        if commit_error is not None:
            raise commit_error
        if failure is not None:
            raise RankFailedError(
                f"feature extraction under torchrun: rank 0 failed to store {entry}: {failure}"
            )
    return found if rank == 0 else read(entry, False)


def _describe(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _raise_first_failure(reports: list[str | None], error: BaseException | None, staging: Path) -> None:
    """Raise this rank's ``error``, or :class:`RankFailedError` naming the first rank that failed."""
    if error is not None:
        raise error
    failed = [(r, report) for r, report in enumerate(reports) if report is not None]
    if failed:
        other, report = failed[0]
        hint = (
            f" (the cache folder must be one every rank reaches: {staging.parent})"
            if report.startswith("FileNotFoundError")
            else ""
        )
        raise RankFailedError(
            f"feature extraction under torchrun: rank {other} failed on its share ({report}); "
            f"nothing was stored{hint}"
        )


def extract_on_every_rank(cache: FeatureCache, extract: Callable[[], None]) -> bool:
    """Under ``torchrun``, run ``extract`` on every rank with ``cache`` split across ranks; say
    whether this process goes on to train heads and report.

    Joins the process group from the environment (:func:`~speechssl.distributed.setup_from_env`)
    and leaves it afterwards if it started it here. In a single process nothing runs and the
    answer is ``True``: the caller extracts as it always does. With several ranks, ``extract``
    makes the requests the caller will make (every rank the same); afterwards they are all
    stored, so rank 0 (answer ``True``) reads them from the cache, and the other ranks (answer
    ``False``) have nothing left to do.

    Raises:
        ValueError: ``cache`` is disabled (ranks hand their shares over through it).
    """
    started = not distributed.is_distributed()
    distributed.setup_from_env()
    try:
        if distributed.world_size() == 1:
            return True
        with cache.split_across_ranks():
            extract()
        return distributed.is_main_process()
    finally:
        if started:
            distributed.cleanup()


__all__ = ["RankFailedError", "Share", "extract_across_ranks", "extract_on_every_rank", "rank_shares"]
