"""Interrupting a real pretraining run mid-epoch, and checking that its resumption ends where an
uninterrupted run does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file


class PreemptedError(Exception):
    """Raised where a preempted job would have been killed."""


@contextlib.contextmanager
def preempted_at(monkeypatch: pytest.MonkeyPatch, loader_class: type, batch: int) -> Iterator[None]:
    """Run the block with ``loader_class.loader_for_epoch`` raising :class:`PreemptedError` when
    the run asks for its ``batch``-th batch (1-based, over the whole run); the block must stop there."""
    served = 0
    original = loader_class.loader_for_epoch

    def preempting(self, epoch: int, start_batch: int):
        nonlocal served
        for item in original(self, epoch, start_batch):
            served += 1
            if served == batch:
                raise PreemptedError(f"preempted at batch {batch}")
            yield item

    with monkeypatch.context() as patch:
        patch.setattr(loader_class, "loader_for_epoch", preempting)
        with pytest.raises(PreemptedError):
            yield


def assert_same_weights(found: Path, expected: Path) -> dict[str, torch.Tensor]:
    """Assert that checkpoint folders ``found`` and ``expected`` hold bit-identical
    ``model.safetensors``; returns the expected tensors."""
    reference = load_file(expected / "model.safetensors")
    tensors = load_file(found / "model.safetensors")
    assert tensors.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(tensors[name], tensor), name
    return reference
