"""Issue 13 §2: the encoder's forward and backward read nothing back to the host."""

from __future__ import annotations

import pytest
import torch
from sync_helpers import host_reads

from speechssl.models import SpeechEncoder


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
@pytest.mark.parametrize(
    "lengths", [[6400, 6400], [6400, 4000], None], ids=["no_padding", "padding", "lengths_none"]
)
def test_encoder_training_forward_and_backward_make_no_host_read(
    frontend, lengths, make_config, speech_batch
):
    torch.manual_seed(0)
    encoder = SpeechEncoder.from_config(make_config(frontend, dropout=0.1, mask_embedding=True)).train()
    waveforms, full = speech_batch(lengths or [6400, 6400])
    lengths = None if lengths is None else full
    mask = torch.zeros(2, int(encoder.output_lengths(torch.tensor(6400))), dtype=torch.bool)
    mask[:, 3:6] = True

    def step() -> None:
        output = encoder(waveforms, lengths, mask_time_indices=mask, output_features=True)
        sum(h.sum() for h in output.hidden_states).backward()

    reads = host_reads(step)
    assert not reads, f"{frontend}: host reads {dict(reads)}"


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
def test_encoder_inference_makes_no_host_read(frontend, make_config, speech_batch):
    encoder = SpeechEncoder.from_config(make_config(frontend)).eval()
    waveforms, lengths = speech_batch([6400, 4000])
    with torch.no_grad():
        reads = host_reads(lambda: encoder(waveforms, lengths))
    assert not reads, f"{frontend}: host reads {dict(reads)}"
