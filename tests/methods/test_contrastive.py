"""InfoNCE and negative sampling shared by CPC and wav2vec 2.0."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.methods.contrastive import info_nce, pool_offsets, sample_negatives


def test_info_nce_of_equal_logits_is_log_of_candidates():
    loss, accuracy = info_nce(torch.full((5, 11), 3.0))
    assert loss.item() == pytest.approx(math.log(11))
    assert accuracy.item() == 0.0  # ties are not correct


def test_info_nce_goes_to_zero_when_the_positive_dominates():
    logits = torch.zeros(4, 9)
    logits[:, 0] = 50.0
    loss, accuracy = info_nce(logits)
    assert loss.item() < 1e-12 and accuracy.item() == 1.0


def test_info_nce_hand_case_and_excluded_negatives():
    logits = torch.tensor([[1.0, 0.0, float("-inf")], [0.0, 2.0, 0.0]])
    loss, accuracy = info_nce(logits)
    expected = (-math.log(math.e / (math.e + 1)) - math.log(1 / (2 + math.exp(2)))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert accuracy.item() == 0.5


def test_pool_offsets():
    assert pool_offsets(torch.tensor([3, 1, 4])).tolist() == [0, 3, 4]


@pytest.mark.parametrize("strategy", ["same_utterance", "other_utterances", "mixed"])
def test_negatives_respect_the_strategy_and_never_hit_the_positive(strategy):
    lengths = torch.tensor([5, 2, 7, 3])
    offsets = pool_offsets(lengths)
    rows = torch.repeat_interleave(torch.arange(4), lengths)  # (pool,) utterance of each entry
    positives = torch.arange(int(lengths.sum()))  # every entry is a positive once
    negatives = sample_negatives(
        positives, lengths, 400, strategy, generator=torch.Generator().manual_seed(0)
    )  # (pool, K)
    assert negatives.shape == (17, 400)
    assert ((negatives >= 0) & (negatives < 17)).all()  # pool indices: never padding
    assert not (negatives == positives[:, None]).any()
    same_row = rows[negatives] == rows[positives][:, None]
    if strategy == "same_utterance":
        assert same_row.all()
        for p in positives.tolist():  # uniform over the utterance's other entries: all are drawn
            row = int(rows[p])
            others = set(range(int(offsets[row]), int(offsets[row] + lengths[row]))) - {p}
            assert set(negatives[p].tolist()) == others
    elif strategy == "other_utterances":
        assert not same_row.any()
        assert set(negatives[0].tolist()) == set(range(5, 17))
    else:
        assert same_row.any() and not same_row.all()
        assert set(negatives[0].tolist()) == set(range(1, 17))


def test_negatives_are_uniform():
    lengths = torch.tensor([4, 6])
    negatives = sample_negatives(
        torch.tensor([2]), lengths, 60_000, "mixed", torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(negatives[0], minlength=10).float() / 60_000
    assert counts[2] == 0
    assert torch.allclose(counts[torch.arange(10) != 2], torch.full((9,), 1 / 9), atol=0.01)


def test_impossible_strategies_are_named():
    with pytest.raises(ValueError, match="strategy 'same_utterance': expected at least one allowed negative"):
        sample_negatives(torch.tensor([2]), torch.tensor([2, 1]), 3, "same_utterance")
    with pytest.raises(ValueError, match="strategy 'other_utterances'"):
        sample_negatives(torch.tensor([0]), torch.tensor([4]), 3, "other_utterances")
    with pytest.raises(ValueError, match=r"strategy: expected one of \['same_utterance'"):
        sample_negatives(torch.tensor([0]), torch.tensor([4]), 3, "speaker")  # type: ignore[arg-type]


def test_without_the_check_a_positive_with_no_allowed_negative_gets_itself():
    # utterance 1 has a single entry (index 2): under same_utterance it has no other frame
    negatives = sample_negatives(torch.tensor([0, 2]), torch.tensor([2, 1]), 5, "same_utterance", check=False)
    assert negatives[0].tolist() == [1] * 5 and negatives[1].tolist() == [2] * 5


@pytest.mark.parametrize("strategy", ["same_utterance", "other_utterances", "mixed"])
def test_a_strided_pool_draws_what_the_packed_pool_draws(strategy):
    lengths, stride = torch.tensor([5, 0, 2, 7]), 8
    packed = torch.arange(int(lengths.sum()))  # (14,) every entry of the packed pool
    rows = torch.repeat_interleave(torch.arange(4), lengths)  # (14,)
    strided = rows * stride + packed - pool_offsets(lengths)[rows]  # (14,) the same entries, strided
    expected = sample_negatives(packed, lengths, 50, strategy, torch.Generator().manual_seed(3))
    found = sample_negatives(
        strided, lengths, 50, strategy, torch.Generator().manual_seed(3), pool_stride=stride
    )  # (14, K) strided indices
    negative_rows = found // stride
    assert (found - negative_rows * stride < lengths[negative_rows]).all()  # never an unused entry
    assert torch.equal(pool_offsets(lengths)[negative_rows] + found % stride, expected)


def test_a_positive_in_an_unused_entry_gets_negatives_of_its_utterance():
    lengths = torch.tensor([3, 4])
    unused = torch.tensor([3, 9])  # entry 3 of utterance 0, entry 4 of utterance 1 (stride 5)
    negatives = sample_negatives(
        unused, lengths, 20, pool_stride=5, generator=torch.Generator().manual_seed(0)
    )
    assert set(negatives[0].tolist()) <= {0, 1, 2} and set(negatives[1].tolist()) <= {5, 6, 7, 8}
