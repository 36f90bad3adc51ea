"""Length helpers of padded batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.data.batch import host_lengths, pad_waveforms, padded_compute


def test_lengths_are_read_only_from_host_memory_outside_compilation():
    lengths = torch.tensor([3, 2])
    assert host_lengths(lengths) == [3, 2]
    assert host_lengths(torch.empty(2, device="meta", dtype=torch.int64)) is None
    with padded_compute():
        assert host_lengths(lengths) is None
    assert host_lengths(lengths) == [3, 2]
    compiled = torch.compile(lambda x: x + len(host_lengths(x) or []), backend="eager", fullgraph=True)
    assert torch.equal(compiled(lengths), lengths)


def test_pad_waveforms_zero_pads_arrays_and_tensors_with_their_lengths():
    waveforms, lengths = pad_waveforms([np.ones(3, dtype=np.float64), torch.full((5,), 2.0)])
    assert waveforms.dtype == torch.float32 and lengths.dtype == torch.int64
    assert lengths.tolist() == [3, 5]
    assert waveforms.tolist() == [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2]]
    with pytest.raises(ValueError, match="expected at least one waveform"):
        pad_waveforms([])
    with pytest.raises(ValueError, match=r"expected 1-D waveforms \(samples,\), found shapes \[\(2, 3\)\]"):
        pad_waveforms([np.zeros((2, 3))])
