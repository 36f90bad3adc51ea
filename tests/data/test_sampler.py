"""DurationBatchSampler: coverage, the padded-duration bound, DDP sharding, determinism and resuming."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speechssl.data.sampler import DurationBatchSampler


def all_ranks(durations, max_seconds, num_replicas, **options) -> list[list[list[int]]]:
    samplers = [
        DurationBatchSampler(durations, max_seconds, num_replicas=num_replicas, rank=rank, **options)
        for rank in range(num_replicas)
    ]
    return [list(sampler) for sampler in samplers]


def padded_seconds(batch, durations) -> float:
    return len(batch) * max(durations[i] for i in batch)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=0.05, max_value=20.0), min_size=1, max_size=200),
    max_seconds=st.floats(min_value=1.0, max_value=60.0),
    num_replicas=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=2**31),
    epoch=st.integers(min_value=0, max_value=5),
    multiplier=st.integers(min_value=1, max_value=5),
    shuffle=st.booleans(),
)
def test_every_index_once_bound_respected_ranks_equal(
    durations, max_seconds, num_replicas, seed, epoch, multiplier, shuffle
):
    ranks = []
    for rank in range(num_replicas):
        sampler = DurationBatchSampler(
            durations,
            max_seconds,
            shuffle=shuffle,
            seed=seed,
            bucket_size_multiplier=multiplier,
            num_replicas=num_replicas,
            rank=rank,
        )
        sampler.set_epoch(epoch)
        ranks.append(list(sampler))
        assert len(sampler) == len(ranks[-1])
    assert len({len(batches) for batches in ranks}) == 1, "ranks got different numbers of batches"
    batches = [batch for rank_batches in ranks for batch in rank_batches]
    counts = Counter(i for batch in batches for i in batch)
    assert set(counts) == set(range(len(durations)))
    if sum(counts.values()) > len(durations):
        # Repeats only to balance ranks when no batch can be split any more.
        assert all(len(batch) == 1 for batch in batches)
        assert sum(counts.values()) - len(durations) < num_replicas
    for batch in batches:
        assert len(batch) == 1 or padded_seconds(batch, durations) <= max_seconds + 1e-9


@settings(max_examples=30, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=0.1, max_value=5.0), min_size=8, max_size=150),
    num_replicas=st.integers(min_value=1, max_value=4),
)
def test_items_that_pair_up_are_seen_exactly_once(durations, num_replicas):
    # Every item is at most half the bound, so batches can always be split to balance ranks.
    ranks = all_ranks(durations, 10.0, num_replicas, seed=1)
    indices = sorted(i for rank_batches in ranks for batch in rank_batches for i in batch)
    assert indices == list(range(len(durations)))


def test_single_items_longer_than_the_bound_get_their_own_batch():
    durations = [1.0, 30.0, 1.0, 1.0, 45.0]
    batches = list(DurationBatchSampler(durations, 10.0, seed=0))
    assert sorted(batches, key=len)[:2] in ([[1], [4]], [[4], [1]])
    assert sorted(i for batch in batches for i in batch) == list(range(5))


def test_padding_only_when_every_batch_is_a_single_item():
    ranks = all_ranks([8.0, 8.0, 8.0], 10.0, 2)
    assert [len(r) for r in ranks] == [2, 2]
    counts = Counter(i for r in ranks for batch in r for i in batch)
    assert set(counts) == {0, 1, 2} and sum(counts.values()) == 4


def test_drop_last_drops_surplus_batches():
    durations = np.full(7, 8.0)  # seven single-item batches over three ranks
    ranks = all_ranks(durations, 10.0, 3, drop_last=True)
    assert [len(r) for r in ranks] == [2, 2, 2]
    seen = [i for r in ranks for batch in r for i in batch]
    assert len(seen) == len(set(seen)) == 6


def test_deterministic_per_seed_and_epoch():
    durations = np.random.default_rng(0).uniform(0.5, 15.0, size=500)
    first = DurationBatchSampler(durations, 60.0, seed=3)
    second = DurationBatchSampler(durations, 60.0, seed=3)
    assert list(first) == list(second)
    first.set_epoch(1)
    second.set_epoch(1)
    epoch_one = list(first)
    assert epoch_one == list(second)
    first.set_epoch(0)
    assert list(first) != epoch_one
    assert list(DurationBatchSampler(durations, 60.0, seed=4)) != list(second)


def test_set_epoch_start_batch_equals_slicing():
    durations = np.random.default_rng(1).uniform(0.5, 15.0, size=300)
    sampler = DurationBatchSampler(durations, 40.0, seed=5, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=7)
    assert list(sampler) == full[7:] and len(sampler) == len(full) - 7
    sampler.set_epoch(3)
    assert len(sampler) == len(list(sampler)) and sampler.start_batch == 0
    with pytest.raises(ValueError, match="start_batch 9999 is past the"):
        sampler.set_epoch(2, start_batch=9999)


def test_bucketing_keeps_padding_low():
    durations = np.random.default_rng(2).uniform(1.0, 16.0, size=4000)
    batches = list(DurationBatchSampler(durations, 100.0, seed=0))
    padded = sum(padded_seconds(batch, durations) for batch in batches)
    assert padded / durations.sum() < 1.1
    unsorted = list(DurationBatchSampler(durations, 100.0, seed=0, bucket_size_multiplier=1))
    assert padded < sum(padded_seconds(batch, durations) for batch in unsorted)


def test_without_shuffle_batches_ignore_the_seed():
    durations = [3.0, 1.0, 2.0, 5.0, 4.0]
    assert (
        list(DurationBatchSampler(durations, 6.0, shuffle=False, seed=0))
        == list(DurationBatchSampler(durations, 6.0, shuffle=False, seed=9))
        == [[1, 2], [0], [4], [3]]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"durations": [1.0, -1.0]}, "finite and >= 0"),
        ({"durations": [[1.0]]}, r"\(utterances,\)"),
        ({"max_batch_seconds": 0.0}, "max_batch_seconds must be > 0"),
        ({"rank": 2, "num_replicas": 2}, r"rank must be in \[0, 2\)"),
        ({"bucket_size_multiplier": 0}, "bucket_size_multiplier must be >= 1"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = {"durations": [1.0, 2.0], "max_batch_seconds": 10.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        DurationBatchSampler(**arguments)


@settings(max_examples=60, deadline=None)
@given(
    durations=st.lists(st.floats(min_value=0.05, max_value=2.0), min_size=8, max_size=200),
    max_seconds=st.floats(min_value=4.0, max_value=60.0),
    num_replicas=st.integers(min_value=1, max_value=4),
    seed=st.integers(min_value=0, max_value=2**31),
    multiplier=st.integers(min_value=1, max_value=5),
)
def test_min_batch_size_holds_for_every_batch(durations, max_seconds, num_replicas, seed, multiplier):
    ranks = all_ranks(
        durations, max_seconds, num_replicas, seed=seed, bucket_size_multiplier=multiplier, min_batch_size=2
    )
    assert len({len(batches) for batches in ranks}) == 1
    batches = [batch for rank_batches in ranks for batch in rank_batches]
    assert batches, "no batch at all"
    assert all(len(batch) >= 2 for batch in batches)
    assert all(padded_seconds(batch, durations) <= max_seconds + 1e-9 for batch in batches)
    counts = Counter(i for batch in batches for i in batch)
    # a bucket's short tail waits for another epoch: at most one item per bucket is left out
    typical = max(1, int(max_seconds // np.mean(durations)))
    buckets = -(-len(durations) // (typical * multiplier))
    assert len(durations) - len(counts) <= buckets


def test_a_lone_leftover_item_is_left_for_another_epoch():
    # 5 items of 1 s in batches of at most 2 s: pairs, and the fifth item would be alone
    sampler = DurationBatchSampler([1.0] * 5, 2.0, seed=0, min_batch_size=2)
    epochs = []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert [len(batch) for batch in batches] == [2, 2]
        epochs.append({i for batch in batches for i in batch})
    assert set.union(*epochs) == set(range(5)), "the left-out item should change between epochs"


def test_min_batch_size_errors_name_the_bound():
    with pytest.raises(ValueError, match="max_batch_seconds: expected at least 2 x the longest item"):
        DurationBatchSampler([1.0, 3.0], 5.0, min_batch_size=2)
    with pytest.raises(ValueError, match="expected at least min_batch_size x ranks = 4 items, found 3"):
        DurationBatchSampler([1.0] * 3, 10.0, min_batch_size=2, num_replicas=2)
    with pytest.raises(ValueError, match="min_batch_size must be >= 1"):
        DurationBatchSampler([1.0], 10.0, min_batch_size=0)
