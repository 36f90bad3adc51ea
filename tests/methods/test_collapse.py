"""Collapse statistics: known values, healthy vs collapsed embeddings, rate-limited warnings."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from speechssl.methods.collapse import CollapseMonitor, effective_rank, normalized_embedding_std


def test_effective_rank_counts_equal_singular_values():
    basis = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(0)))[0]
    for k in (1, 5, 32):
        z = torch.cat([basis[:, :k], -basis[:, :k]]) @ torch.eye(k, 16 if k < 16 else k)  # centred, k equal σ
        assert float(effective_rank(z)) == pytest.approx(k, rel=1e-4)
    assert float(effective_rank(torch.ones(8, 4))) == 1.0, "a constant batch"


def test_normalized_std_of_spread_and_collapsed_embeddings():
    spread = torch.randn(4096, 64, generator=torch.Generator().manual_seed(1))
    assert float(normalized_embedding_std(spread)) == pytest.approx(1 / math.sqrt(64), rel=0.05)
    point = torch.ones(32, 64) + 1e-6 * torch.randn(32, 64, generator=torch.Generator().manual_seed(2))
    assert float(normalized_embedding_std(point)) < 1e-5


def test_monitor_warns_on_collapse_at_most_every_n_calls(caplog):
    monitor = CollapseMonitor(warn_every=3)
    healthy = monitor(torch.randn(128, 32, generator=torch.Generator().manual_seed(3)))
    assert float(healthy["collapsed"]) == 0.0 and float(healthy["effective_rank"]) > 20
    low_rank = torch.randn(128, 1, generator=torch.Generator().manual_seed(4)) @ torch.ones(1, 32)
    with caplog.at_level(logging.WARNING, logger="speechssl.methods.collapse"):
        flags = [float(monitor(low_rank)["collapsed"]) for _ in range(7)]
    assert flags == [1.0] * 7
    assert len([r for r in caplog.records if "representation collapse" in r.message]) == 3  # calls 1, 4, 7


def test_bad_inputs_say_expected_and_found():
    with pytest.raises(ValueError, match=r"z: expected \(batch >= 2, dim\), found shape \(1, 4\)"):
        effective_rank(torch.zeros(1, 4))
    with pytest.raises(ValueError, match=r"expected fractions in \(0, 1\], found 0.0/0.05"):
        CollapseMonitor(std_fraction=0.0)
