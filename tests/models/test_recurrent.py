"""RecurrentEncoder: shapes, causality, padding invariance, bidirectionality, SpeechEncoder wiring."""

from __future__ import annotations

import pytest
import torch

from speechssl.models import RecurrentEncoder, RecurrentLayer, SpeechEncoder

DIM = 8


def _encoder(cell: str = "lstm", bidirectional: bool = False, layers: int = 2) -> RecurrentEncoder:
    blocks = [RecurrentLayer(DIM, cell, bidirectional=bidirectional) for _ in range(layers)]
    return RecurrentEncoder(DIM, blocks, dropout=0.0).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_returns_the_input_and_one_hidden_state_per_layer(cell, bidirectional):
    encoder = _encoder(cell, bidirectional, layers=3)
    x = torch.randn(2, 7, DIM)
    hidden = encoder(x, torch.tensor([7, 4]))
    assert len(hidden) == len(encoder.layers) + 1 == 4
    assert all(h.shape == (2, 7, DIM) for h in hidden)
    torch.testing.assert_close(hidden[0][0], x[0])
    assert all(torch.all(h[1, 4:] == 0) for h in hidden)
    assert encoder.dim == DIM and encoder.causal is not bidirectional


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unidirectional_outputs_ignore_future_frames(cell):
    encoder = _encoder(cell)
    x = torch.randn(1, 10, DIM)
    changed = x.clone()
    changed[:, 6:] = torch.randn(1, 4, DIM)
    with torch.no_grad():
        before, after = encoder(x, torch.tensor([10]))[-1], encoder(changed, torch.tensor([10]))[-1]
    torch.testing.assert_close(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_bidirectional_outputs_see_future_frames():
    encoder = _encoder(bidirectional=True)
    x = torch.randn(1, 10, DIM)
    changed = x.clone()
    changed[:, 9] += 1.0
    with torch.no_grad():
        before, after = encoder(x, torch.tensor([10]))[-1], encoder(changed, torch.tensor([10]))[-1]
    assert not torch.allclose(before[:, 0], after[:, 0])


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_valid_outputs_equal_those_computed_without_padding(bidirectional):
    encoder = _encoder("lstm", bidirectional)
    lengths = [9, 5, 2]
    x = torch.randn(3, 9, DIM)
    x[1, 5:] = 1e3  # padding garbage must not leak
    x[2, 2:] = -1e3
    with torch.no_grad():
        batched = encoder(x, torch.tensor(lengths))
        for i, n in enumerate(lengths):
            alone = encoder(x[i : i + 1, :n], torch.tensor([n]))
            for b, a in zip(batched, alone, strict=True):
                torch.testing.assert_close(b[i, :n], a[0], rtol=1e-5, atol=1e-6)
                assert torch.all(b[i, n:] == 0)


def test_errors_say_expected_and_found():
    with pytest.raises(ValueError, match="cell: expected 'lstm' or 'gru', found 'rnn'"):
        RecurrentLayer(DIM, "rnn")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"layers\[0\].dim: expected 8, found 4"):
        RecurrentEncoder(DIM, [RecurrentLayer(4)])
    with pytest.raises(ValueError, match="found a mixture"):
        RecurrentEncoder(DIM, [RecurrentLayer(DIM), RecurrentLayer(DIM, bidirectional=True)])
    with pytest.raises(ValueError, match=r"x: expected \(batch, frames, 8\), found \(2, 3, 4\)"):
        _encoder()(torch.zeros(2, 3, 4), torch.tensor([3, 3]))


@pytest.mark.parametrize("context", ["lstm", "gru"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_speech_encoder_with_a_recurrent_context(context, causal, make_config, speech_batch):
    # heads=3 does not divide dim=32: attention options are ignored by recurrent contexts
    config = make_config(context=context, layers=3, heads=3, causal=causal, feature_norm=not causal)
    encoder = SpeechEncoder.from_config(config).eval()
    assert isinstance(encoder.context, RecurrentEncoder)
    assert encoder.context.causal is causal
    waveforms, lengths = speech_batch([8000, 5000])
    output = encoder(waveforms, lengths)
    assert encoder.num_layers == len(output.hidden_states) == 4
    frames = int(encoder.output_lengths(torch.tensor(8000)))
    assert all(h.shape == (2, frames, 32) for h in output.hidden_states)
    assert output.downsample_rate == 640


def test_causal_speech_encoder_ignores_future_audio(make_config, speech_batch):
    config = make_config(context="lstm", causal=True, feature_norm=False)
    encoder = SpeechEncoder.from_config(config).eval()
    waveforms, lengths = speech_batch([8000])
    changed = waveforms.clone()
    changed[:, 6400:] = 0.1 * torch.randn(1, 1600)  # from output frame 10 on (640 samples per frame)
    with torch.no_grad():
        before = encoder(waveforms, lengths).last_hidden_state
        after = encoder(changed, lengths).last_hidden_state
    torch.testing.assert_close(before[:, :9], after[:, :9])
    assert not torch.allclose(before[:, 11:], after[:, 11:])


def test_context_option_is_checked(make_config):
    with pytest.raises(ValueError, match="context: expected 'transformer', 'lstm' or 'gru', found 'rnn'"):
        make_config(context="rnn")
