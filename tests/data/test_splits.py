"""Task re-splits: within speakers, speaker-disjoint (stratified), and speaker folds."""

from __future__ import annotations

import dataclasses

import pytest

from speechssl.data import Manifest, Utterance
from speechssl.data.splits import (
    FOLD_COLUMN,
    folds_from_column,
    group_disjoint_split,
    group_folds,
    hash_order,
    with_fold_column,
    within_group_split,
)


def _corpus(speakers: int = 12, per_speaker: int = 10) -> Manifest:
    rows = [
        Utterance(
            id=f"s{s:02d}_{u:02d}",
            path=f"/none/s{s}_{u}.wav",
            duration=1.0,
            sample_rate=16000,
            speaker=f"s{s:02d}",
            split="train",
            labels={"gender": "f" if s % 3 == 0 else "m", "emotion": str(u % 4)},
        )
        for s in range(speakers)
        for u in range(per_speaker)
    ]
    return Manifest(rows)


def _speakers(manifest: Manifest, split: str) -> set[str]:
    return set(manifest.filter(split=split).column("speaker"))


def test_hash_order_is_a_seeded_permutation():
    keys = [f"k{i}" for i in range(50)]
    assert sorted(hash_order(keys, 0)) == sorted(keys)
    assert hash_order(keys, 0) == hash_order(list(reversed(keys)), 0)
    assert hash_order(keys, 0) != hash_order(keys, 1)


def test_within_speaker_split_puts_every_speaker_in_every_split():
    split = within_group_split(_corpus(), valid_fraction=0.2, test_fraction=0.2, seed=3)
    assert split.ids == _corpus().ids
    counts = split.counts("split")
    assert counts == {"train": 72, "valid": 24, "test": 24}
    for name in ("train", "valid", "test"):
        assert _speakers(split, name) == _speakers(_corpus(), "train")
    assert split != within_group_split(_corpus(), 0.2, 0.2, seed=4)


def test_speaker_disjoint_split_is_disjoint_and_stratified():
    split = group_disjoint_split(_corpus(), 0.25, 0.25, stratify="gender", seed=1)
    train, valid, test = (_speakers(split, name) for name in ("train", "valid", "test"))
    assert not (train & valid or train & test or valid & test)
    assert train | valid | test == {f"s{s:02d}" for s in range(12)}
    for name in ("train", "valid", "test"):
        assert set(split.filter(split=name).column("gender")) == {"f", "m"}


def test_speaker_folds_test_each_speaker_once_and_never_train_on_it():
    folds = group_folds(_corpus(), folds=4, stratify="gender")
    tested = [_speakers(fold, "test") for fold in folds]
    assert sorted(s for group in tested for s in group) == sorted(f"s{s:02d}" for s in range(12))
    for k, fold in enumerate(folds):
        assert not _speakers(fold, "train") & (_speakers(fold, "test") | _speakers(fold, "valid"))
        assert _speakers(fold, "valid") == tested[(k + 1) % 4]
        assert set(fold.filter(split="test").column("gender")) == {"f", "m"}


def test_split_errors_name_the_option():
    with pytest.raises(ValueError, match="group: expected 'speaker' or a label column"):
        within_group_split(_corpus(), 0.1, 0.1, group="accent")
    with pytest.raises(ValueError, match="stratify: group 's00' has several emotion values"):
        group_disjoint_split(_corpus(), 0.2, 0.2, stratify="emotion")
    with pytest.raises(ValueError, match="folds: expected between 3 and the number of groups"):
        group_folds(_corpus(), folds=20)
    with pytest.raises(ValueError, match="summing below 1"):
        within_group_split(_corpus(), 0.6, 0.6)


def test_split_rows_lists_each_splits_rows_in_manifest_order():
    split = within_group_split(_corpus(speakers=3, per_speaker=10), valid_fraction=0.2, test_fraction=0.2)
    rows = split.split_rows()
    assert sorted(rows) == ["test", "train", "valid"]
    assert sorted(i for indices in rows.values() for i in indices) == list(range(len(split)))
    for name, indices in rows.items():
        assert indices == sorted(indices)
        assert [split.ids[i] for i in indices] == split.filter(split=name).ids
    assert split.split_rows(("dev", "test")) == {"dev": [], "test": rows["test"]}


def test_fold_column_round_trips_to_the_group_folds():
    manifest = _corpus()
    written = with_fold_column(manifest, folds=4, stratify="gender", seed=3)
    assert written.label_columns == ("gender", "emotion", FOLD_COLUMN)
    for row in written:  # one fold per speaker
        assert {r.labels[FOLD_COLUMN] for r in written if r.speaker == row.speaker} == {
            row.labels[FOLD_COLUMN]
        }
    read = folds_from_column(written)
    expected = group_folds(manifest, folds=4, stratify="gender", seed=3)
    assert [fold.column("split") for fold in read] == [fold.column("split") for fold in expected]
    for k, fold in enumerate(read):
        assert set(fold.filter(split="test").column(FOLD_COLUMN)) == {str(k)}
        assert set(fold.filter(split="valid").column(FOLD_COLUMN)) == {str((k + 1) % 4)}
    with pytest.raises(ValueError, match="already has a 'fold' column"):
        with_fold_column(written, folds=4)
    with pytest.raises(ValueError, match="expected a fold column 'fold'"):
        folds_from_column(manifest)
    gaps = Manifest(
        dataclasses.replace(row, labels={**row.labels, FOLD_COLUMN: str(i % 3 * 2)})
        for i, row in enumerate(manifest)
    )
    with pytest.raises(
        ValueError, match=r"expected fold numbers 0 … K-1 with K >= 3, found \['0', '2', '4'\]"
    ):
        folds_from_column(gaps)
