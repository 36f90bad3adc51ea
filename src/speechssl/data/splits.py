"""Re-splitting a manifest for a task: within groups, across groups, or into group folds.

Which split is honest depends on the task: speaker identification needs the same speakers
in train and test (:func:`within_group_split`); gender, emotion and keyword tasks must not
reward recognising a voice, so their splits keep every speaker in one split
(:func:`group_disjoint_split`), and small corpora are evaluated over several such folds
(:func:`group_folds`, as SUPERB does for emotion by session), which
:func:`with_fold_column` writes into a manifest as a ``fold`` column and
:func:`folds_from_column` reads back. Every assignment is a pure
function of the ids and the seed, so splits are reproducible and need no stored list.
"""

from __future__ import annotations

import dataclasses
import warnings
import zlib
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

from speechssl.data.manifest import SPLITS, Manifest, Utterance

FOLD_COLUMN = "fold"  # the label column of a manifest's group folds (:func:`with_fold_column`)


def hash_order(keys: Sequence[str], seed: int) -> list[str]:
    """``keys`` in a pseudo-random order fixed by ``seed`` (CRC-32 of ``"seed|key"``, ties by key)."""
    return sorted(keys, key=lambda key: (zlib.crc32(f"{seed}|{key}".encode()), key))


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise ValueError(
            "valid_fraction and test_fraction: expected >= 0 and summing below 1, "
            f"found {valid_fraction} and {test_fraction}"
        )


def assign_splits(
    keys: Sequence[str], valid_fraction: float, test_fraction: float, seed: int
) -> dict[str, str]:
    """Key -> ``train``/``valid``/``test``: ``round(n·test_fraction)`` keys to test, then
    ``round(n·valid_fraction)`` to valid, the rest to train, in :func:`hash_order`."""
    _check_fractions(valid_fraction, test_fraction)
    ordered = hash_order(keys, seed)
    n_test = round(len(ordered) * test_fraction)
    n_valid = round(len(ordered) * valid_fraction)
    return {
        key: "test" if position < n_test else "valid" if position < n_test + n_valid else "train"
        for position, key in enumerate(ordered)
    }


def _group_of(row: Utterance, group: str) -> str:
    return row.speaker if group == "speaker" else row.labels[group]


def _check_group(manifest: Manifest, group: str) -> None:
    if group != "speaker" and group not in manifest.label_columns:
        raise ValueError(
            f"group: expected 'speaker' or a label column ({', '.join(manifest.label_columns)}), found {group!r}"
        )


def _with_splits(manifest: Manifest, split_of: dict[str, str]) -> Manifest:
    return Manifest(dataclasses.replace(row, split=split_of[row.id]) for row in manifest)


def within_group_split(
    manifest: Manifest, valid_fraction: float, test_fraction: float, group: str = "speaker", seed: int = 0
) -> Manifest:
    """Split each group's utterances (default: each speaker's) into train/valid/test.

    Every group appears in every split that its size allows: the split for identification
    tasks (speaker ID), where test utterances come from speakers seen in training.
    """
    _check_group(manifest, group)
    members: dict[str, list[str]] = defaultdict(list)
    for row in manifest:
        members[_group_of(row, group)].append(row.id)
    split_of: dict[str, str] = {}
    for ids in members.values():
        split_of.update(assign_splits(ids, valid_fraction, test_fraction, seed))
    return _with_splits(manifest, split_of)


def _groups_by_stratum(manifest: Manifest, group: str, stratify: str | None) -> dict[Hashable, list[str]]:
    """Stratum value -> the groups in it (one stratum when ``stratify`` is None)."""
    if stratify is not None and stratify not in manifest.label_columns:
        raise ValueError(
            f"stratify: expected a label column ({', '.join(manifest.label_columns)}), found {stratify!r}"
        )
    stratum_of: dict[str, Hashable] = {}
    for row in manifest:
        key = _group_of(row, group)
        value = row.labels[stratify] if stratify is not None else None
        if stratum_of.setdefault(key, value) != value:
            raise ValueError(
                f"stratify: group {key!r} has several {stratify} values ({stratum_of[key]!r}, {value!r}); "
                "expected one per group"
            )
    strata: dict[Hashable, list[str]] = defaultdict(list)
    for key, value in stratum_of.items():
        strata[value].append(key)
    return strata


def group_disjoint_split(
    manifest: Manifest,
    valid_fraction: float,
    test_fraction: float,
    group: str = "speaker",
    stratify: str | None = None,
    seed: int = 0,
) -> Manifest:
    """Assign whole groups (default: speakers) to train/valid/test, so no group spans two splits.

    With ``stratify`` (a label constant within each group, e.g. ``gender``), the groups of
    each stratum are split separately, so every split keeps the strata's proportions.
    """
    _check_group(manifest, group)
    split_of_group: dict[str, str] = {}
    for groups in _groups_by_stratum(manifest, group, stratify).values():
        split_of_group.update(assign_splits(groups, valid_fraction, test_fraction, seed))
    return _with_splits(manifest, {row.id: split_of_group[_group_of(row, group)] for row in manifest})


def _fold_of_groups(
    manifest: Manifest, folds: int, group: str, stratify: str | None, seed: int
) -> dict[str, int]:
    """Group -> fold index: groups dealt round-robin in :func:`hash_order` within each stratum."""
    _check_group(manifest, group)
    strata = _groups_by_stratum(manifest, group, stratify)
    total = sum(len(groups) for groups in strata.values())
    if not 3 <= folds <= total:
        raise ValueError(f"folds: expected between 3 and the number of groups ({total}), found {folds}")
    fold_of: dict[str, int] = {}
    dealt = 0
    for value in sorted(strata, key=str):
        for key in hash_order(strata[value], seed):
            fold_of[key] = dealt % folds
            dealt += 1
    return fold_of


def _folds_of(manifest: Manifest, fold_of_row: list[int], folds: int) -> list[Manifest]:
    """Fold ``k`` tests on the rows of fold ``k``, validates on fold ``k+1`` (cyclically), trains on the rest."""
    result = []
    for k in range(folds):
        names = {k: "test", (k + 1) % folds: "valid"}
        split_of = {row.id: names.get(fold, "train") for row, fold in zip(manifest, fold_of_row, strict=True)}
        result.append(_with_splits(manifest, split_of))
    return result


def group_folds(
    manifest: Manifest, folds: int, group: str = "speaker", stratify: str | None = None, seed: int = 0
) -> list[Manifest]:
    """``folds`` group-disjoint re-splits: fold ``k`` tests on group set ``k``, validates on set
    ``k+1`` (cyclically) and trains on the rest; every group is tested exactly once.

    Groups are dealt to the sets round-robin in :func:`hash_order` within each stratum, so
    with ``stratify`` every set holds each stratum in equal measure where counts allow.
    """
    fold_of = _fold_of_groups(manifest, folds, group, stratify, seed)
    return _folds_of(manifest, [fold_of[_group_of(row, group)] for row in manifest], folds)


def with_fold_column(
    manifest: Manifest,
    folds: int,
    group: str = "speaker",
    stratify: str | None = None,
    seed: int = 0,
    column: str = FOLD_COLUMN,
) -> Manifest:
    """``manifest`` with a label column ``column`` holding each row's group fold (``0`` … ``folds-1``),
    the sets of :func:`group_folds`; :func:`folds_from_column` turns it back into the folds."""
    if column in manifest.label_columns:
        raise ValueError(f"column: the manifest already has a {column!r} column")
    fold_of = _fold_of_groups(manifest, folds, group, stratify, seed)
    return Manifest(
        dataclasses.replace(row, labels={**row.labels, column: str(fold_of[_group_of(row, group)])})
        for row in manifest
    )


def folds_from_column(manifest: Manifest, column: str = FOLD_COLUMN) -> list[Manifest]:
    """The re-splits of a fold column (:func:`with_fold_column`): fold ``k`` tests on the rows whose
    ``column`` is ``k``, validates on ``k+1`` (cyclically) and trains on the rest.

    Raises:
        ValueError: no such column, values that are not ``0`` … ``K-1``, or fewer than 3 folds.
    """
    if column not in manifest.label_columns:
        raise ValueError(
            f"column: expected a fold column {column!r} in the manifest, found {manifest.label_columns}"
        )
    values = manifest.column(column)
    found = set(values)
    if found != {str(k) for k in range(len(found))} or len(found) < 3:
        raise ValueError(
            f"column {column!r}: expected fold numbers 0 … K-1 with K >= 3, found {sorted(found, key=str)}"
        )
    return _folds_of(manifest, [int(value) for value in values], len(found))


def require_label(manifest: Manifest, column: str, where: str) -> None:
    """Check that ``column`` is ``speaker`` or a label column of ``manifest``.

    Raises:
        ValueError: naming ``where`` (the task, the file) and the columns there are.
    """
    if column != "speaker" and column not in manifest.label_columns:
        raise ValueError(
            f"{where}: expected a label column of the manifest, found {sorted({'speaker', *manifest.label_columns})}"
        )


def labelled_rows(
    rows: Mapping[str, Sequence[int]], values: Sequence[str], column: str, where: str
) -> dict[str, list[int]]:
    """``rows`` (row indices per split) without the rows whose ``column`` value is empty.

    An empty cell is a missing label, not a class ``''``: the row is left out of this task (it
    may still serve others) and a warning counts the rows left out per split, naming ``where``.

    Args:
        rows: split -> row indices, e.g. :meth:`Manifest.split_rows`.
        values: the column's value of every row of the manifest.
        column: the label column.
        where: the task or file, for the warning.
    """
    kept = {
        split: [index for index in indices if str(values[index]).strip()] for split, indices in rows.items()
    }
    dropped = {split: len(indices) - len(kept[split]) for split, indices in rows.items()}
    if any(dropped.values()):
        counts = ", ".join(f"{split}={count}" for split, count in dropped.items() if count)
        warnings.warn(
            f"{where}: rows with an empty {column!r} (a missing label) left out of the task: {counts}",
            stacklevel=2,
        )
    return kept


def require_splits(manifest: Manifest, where: str) -> dict[str, list[int]]:
    """``manifest``'s rows per split (:meth:`Manifest.split_rows`), checked to hold ``train``,
    ``valid`` (which chooses a head's epoch and learning rate) and ``test`` rows.

    Raises:
        ValueError: naming ``where`` and the splits found.
    """
    rows = manifest.split_rows()
    if not all(rows[split] for split in SPLITS):
        raise ValueError(
            f"{where}: the split column needs train, valid and test rows (valid chooses the epoch and "
            f"learning rate), found {sorted(manifest.counts('split'))}"
        )
    return rows
