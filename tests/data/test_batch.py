"""Length helpers of padded batches."""

from __future__ import annotations

import torch

from speechssl.data.batch import host_lengths, padded_compute


def test_lengths_are_read_only_from_host_memory_outside_compilation():
    lengths = torch.tensor([3, 2])
    assert host_lengths(lengths) == [3, 2]
    assert host_lengths(torch.empty(2, device="meta", dtype=torch.int64)) is None
    with padded_compute():
        assert host_lengths(lengths) is None
    assert host_lengths(lengths) == [3, 2]
    compiled = torch.compile(lambda x: x + len(host_lengths(x) or []), backend="eager", fullgraph=True)
    assert torch.equal(compiled(lengths), lengths)
