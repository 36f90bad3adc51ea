"""s3prl's UpstreamExpert contract over speechssl upstreams: list of waveforms in, hidden states out."""

from __future__ import annotations

import pytest
import torch
import yaml

from speechssl.config import to_dict
from speechssl.models import EncoderConfig
from speechssl.upstream import build_upstream
from speechssl.upstream.s3prl import SUPERB_TASK_KEYS, UpstreamExpert

TOLERABLE_SEQLEN_DIFF = 5  # s3prl's Featurizer: padded frames vs round(longest / downsample rate)
LENGTHS = (16000, 11111, 4000)


@pytest.fixture
def waveform_spec(tmp_path) -> str:
    """``random:<encoder.yaml>`` of a tiny waveform-CNN encoder (20 ms frames)."""
    config = EncoderConfig(
        frontend="waveform", dim=32, layers=2, heads=4, ffn_dim=64, pos_conv_kernel=16, pos_conv_groups=4,
        conv_channels=32,
    )  # fmt: skip
    path = tmp_path / "encoder.yaml"
    path.write_text(yaml.safe_dump(to_dict(config)))
    return f"random:{path}"


def _wavs(lengths=LENGTHS, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=generator) for n in lengths]


@pytest.fixture(params=["waveform", "fbank"])
def spec(request, waveform_spec, tiny_run) -> str:
    """A waveform encoder's spec, or a trained run folder (the tiny fbank encoder)."""
    return waveform_spec if request.param == "waveform" else str(tiny_run.run_dir)


def test_hidden_states_are_speechssls_on_the_padded_batch(spec):
    expert = UpstreamExpert(spec, model_config=None, refresh=False)
    wavs = _wavs()
    output = expert(wavs)

    upstream = build_upstream(spec)
    lengths = torch.tensor(LENGTHS)
    padded = torch.zeros(len(wavs), max(LENGTHS))  # (batch, samples)
    for row, wav in enumerate(wavs):
        padded[row, : len(wav)] = wav
    expected = upstream(padded, lengths)
    assert len(output["hidden_states"]) == upstream.num_layers
    for hidden, reference in zip(output["hidden_states"], expected.hidden_states, strict=True):
        assert torch.equal(hidden, reference)
    assert output["last_hidden_state"] is output["hidden_states"][-1]
    assert all(output[f"hidden_state_{i}"] is h for i, h in enumerate(output["hidden_states"]))
    assert all(output[key] is output["hidden_states"] for key in SUPERB_TASK_KEYS)

    # Each utterance's valid frames are those it has alone; its padded frames are zero.
    frames = upstream.output_lengths(lengths).tolist()
    for row, wav in enumerate(wavs):
        alone = expert([wav])["hidden_states"]
        for hidden, single in zip(output["hidden_states"], alone, strict=True):
            torch.testing.assert_close(hidden[row, : frames[row]], single[0], atol=1e-5, rtol=1e-5)
            assert not hidden[row, frames[row] :].any()


@pytest.mark.parametrize(("frontend", "rate"), [("waveform", 320), ("fbank", 640)])
def test_downsample_rates_fit_the_frame_counts(frontend, rate, waveform_spec, tiny_run):
    expert = UpstreamExpert(waveform_spec if frontend == "waveform" else str(tiny_run.checkpoint))
    assert expert.get_downsample_rates("hidden_states") == expert.get_downsample_rates("PR") == rate
    lengths = (16000, 12345, 8000, 3210)
    hidden = expert(_wavs(lengths))["last_hidden_state"]  # (batch, frames, dim)
    # What s3prl's Featurizer checks, then keeps of each utterance: round(samples / rate) frames,
    # each within one frame of the utterance's own valid frames.
    assert abs(hidden.shape[1] - round(max(lengths) / rate)) < TOLERABLE_SEQLEN_DIFF
    valid = expert.upstream.output_lengths(torch.tensor(lengths)).tolist()
    assert all(abs(round(n / rate) - v) <= 1 for n, v in zip(lengths, valid, strict=True))


def test_bad_arguments_name_what_was_expected(waveform_spec, tmp_path):
    with pytest.raises(ValueError, match="model_config: expected none"):
        UpstreamExpert(waveform_spec, model_config="config.yaml")
    expert = UpstreamExpert(waveform_spec)
    with pytest.raises(
        ValueError, match=r"expected 1-D waveforms \(samples,\), found shapes \[\(1, 16000\)\]"
    ):
        expert([torch.zeros(1, 16000)])
    with pytest.raises(ValueError, match="expected at least one waveform"):
        expert([])
    config = EncoderConfig(dim=16, layers=1, heads=2, n_mels=16, sample_rate=8000)
    (tmp_path / "8k.yaml").write_text(yaml.safe_dump(to_dict(config)))
    with pytest.raises(ValueError, match="sample_rate: expected an upstream at s3prl's 16000 Hz"):
        UpstreamExpert(f"random:{tmp_path / '8k.yaml'}")
