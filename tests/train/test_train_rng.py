"""Deterministic mode: set inside the block, the previous settings back after it."""

from __future__ import annotations

import torch

from speechssl.train.rng import deterministic_algorithms


def test_deterministic_mode_sets_and_restores_the_flags():
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.enabled)
    with deterministic_algorithms(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert not torch.backends.mkldnn.enabled
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.enabled) == before
    with deterministic_algorithms(False):
        assert (torch.are_deterministic_algorithms_enabled(), torch.backends.mkldnn.enabled) == before
