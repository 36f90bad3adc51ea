"""Issue 13 §2: the encoder runs under ``torch.compile`` and matches eager mode."""

from __future__ import annotations

import torch

from speechssl.models import SpeechEncoder


def test_the_compiled_encoder_matches_eager_mode(make_config, speech_batch):
    # the waveform front-end is compiled by the wav2vec 2.0 case of tests/methods/test_compile.py
    encoder = SpeechEncoder.from_config(make_config("fbank", layers=1)).eval()
    waveforms, lengths = speech_batch([8000, 6400])
    eager = encoder(waveforms, lengths)
    # aot_eager traces forward and backward like inductor, without its C++ compile (seconds on CPU)
    compiled = torch.compile(encoder, backend="aot_eager")(waveforms, lengths)
    torch.testing.assert_close(compiled.last_hidden_state, eager.last_hidden_state)
    assert torch.equal(compiled.lengths, eager.lengths)
