"""PASE: targets aligned with the encoder's frames, the weighted worker losses, training, pretraining."""

from __future__ import annotations

import math

import pytest
import torch

from speechssl.config import ConfigError
from speechssl.data.batch import AudioBatch
from speechssl.methods import build_method, method_config
from speechssl.methods.pase import PASE, PASEConfig, WorkerWeights, frame_centre
from speechssl.train import load_pretrain_config, pretrain
from speechssl.upstream import build_upstream


def tone_batch() -> AudioBatch:
    """A 200 Hz tone with harmonics (1 s) and a shorter noisy sweep (0.6 s) padded to 1 s."""
    t = torch.arange(16000, dtype=torch.float64) / 16000
    first = 0.3 * torch.sin(2 * math.pi * 200 * t) + 0.1 * torch.sin(2 * math.pi * 400 * t)
    second = 0.2 * torch.sin(2 * math.pi * (120 * t + 150 * t**2))
    second = second + 0.01 * torch.randn(
        16000, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    second[9600:] = 0.0
    return AudioBatch(torch.stack([first, second]).float(), torch.tensor([16000, 9600]), ["a", "b"])


def clean_config(**changes) -> PASEConfig:
    return PASEConfig(distortion=None, n_fft=512, **changes)


@pytest.mark.parametrize("frontend", ["fbank", "waveform"])
def test_targets_follow_the_encoders_frames_and_padding(tiny_encoder, frontend):
    encoder = tiny_encoder(frontend)
    method = PASE(encoder, clean_config())
    batch = tone_batch()
    output = encoder(batch.waveforms, batch.lengths)
    frames = output.last_hidden_state.shape[1]
    targets = method.targets(batch.waveforms, batch.lengths, output.lengths, frames)
    hop = encoder.downsample_rate
    assert {name: tuple(t.shape) for name, t in targets.items()} == {
        "waveform": (2, frames, hop),
        "lps": (2, frames, 257),
        "mfcc": (2, frames, 20),
        "prosody": (2, frames, 4),
    }
    short = int(output.lengths[1])
    for target in targets.values():
        assert torch.isfinite(target).all() and (target[1, short:] == 0).all()
    for name in ("lps", "mfcc"):  # standardised per utterance over the valid frames
        valid = targets[name][1, :short]
        torch.testing.assert_close(valid.mean(0), torch.zeros(valid.shape[1]), atol=1e-4, rtol=0)
    # waveform target t: the hop samples centred on the frame's centre, over the utterance's RMS
    centre = frame_centre(encoder) + 3 * hop
    rms = batch.waveforms[0].pow(2).mean().sqrt()
    expected = batch.waveforms[0, centre - hop // 2 : centre + hop // 2] / rms
    torch.testing.assert_close(targets["waveform"][0, 3], expected)
    voicing = targets["prosody"][..., 3]
    assert voicing[0, 1:-2].min() > 0.9  # the tone is voiced ...
    alone = method.targets(batch.waveforms[1:, :9600], batch.lengths[1:], output.lengths[1:], frames)
    for name, target in alone.items():  # ... and an utterance's targets do not depend on the padding
        torch.testing.assert_close(target[0], targets[name][1], atol=1e-4, rtol=1e-4)


def test_frame_centres_of_the_two_frontends(tiny_encoder):
    assert frame_centre(tiny_encoder("fbank")) == 0
    assert (
        frame_centre(tiny_encoder("waveform")) == 200
    )  # half the wav2vec 2.0 CNN's 400-sample receptive field


def test_loss_is_the_weighted_sum_of_the_built_workers(tiny_encoder):
    torch.manual_seed(0)
    weights = WorkerWeights(waveform=0.0, lps=2.0, mfcc=1.0, prosody=0.5)
    method = PASE(tiny_encoder("fbank"), clean_config(weights=weights))
    assert sorted(method.workers) == ["lps", "mfcc", "prosody"]
    output = method(tone_batch())
    metrics = output.metrics
    expected = 2.0 * metrics["loss_lps"] + metrics["loss_mfcc"] + 0.5 * metrics["loss_prosody"]
    assert output.loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_few_steps_on_a_fixed_batch_lower_every_worker_loss(tiny_encoder):
    torch.manual_seed(0)
    method = PASE(tiny_encoder("fbank"), clean_config())
    optimizer = torch.optim.Adam(method.parameters(), lr=3e-3)
    batch = tone_batch()
    history = []
    for _ in range(30):
        output = method(batch)
        optimizer.zero_grad()
        output.loss.backward()
        optimizer.step()
        history.append({"loss": output.loss.item(), **{k: v.item() for k, v in output.metrics.items()}})
    assert all(math.isfinite(v) for v in history[-1].values())
    for name in history[0]:
        assert history[-1][name] < history[0][name], name
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]


def test_distorted_input_keeps_clean_targets_and_runs(tiny_encoder):
    torch.manual_seed(0)
    method = PASE(tiny_encoder("waveform"), PASEConfig(n_fft=512), generator=torch.Generator().manual_seed(0))
    assert method.distortion is not None
    output = method(tone_batch())
    assert math.isfinite(output.loss.item())
    output.loss.backward()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"weights": {"waveform": 0, "lps": 0, "mfcc": 0, "prosody": 0}},
            "expected at least one positive weight",
        ),
        ({"weights": {"lps": -1}}, r"lps: expected a weight >= 0, found -1\.0"),
        ({"n_mfcc": 50}, "n_mfcc: expected at most n_mels=40, found 50"),
        ({"distortion": {"crop_seconds": 2.0}}, r"distortion\.crop_seconds: expected null"),
        ({"distortion": {"speed": {"p": 0.5}}}, "expected augmentations that keep durations"),
        ({"pitch": {"f0_min": 500.0}}, "f0_min/f0_max: expected 0 < f0_min < f0_max"),
    ],
)
def test_option_errors_name_the_option(options, message):
    with pytest.raises(ConfigError, match=message):
        method_config("pase", options)


def test_pretrain_end_to_end_and_the_checkpoint_loads_as_an_upstream(
    tiny_encoder, tmp_path, tiny_pretrain_overrides
):
    assert isinstance(
        build_method("pase", method_config("pase", {"distortion": None}), tiny_encoder("fbank")), PASE
    )
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("objective.")]
    overrides += ["encoder.conv_channels=16", f"data.root={tmp_path / 'corpus'}"]
    config = load_pretrain_config(None, overrides, method="pase")
    assert config.encoder.frontend == "waveform"
    result = pretrain(config, tmp_path / "run")
    assert result.step == 3 and math.isfinite(result.loss)
    upstream = build_upstream(str(result.checkpoint))
    assert upstream.num_layers == 2 and upstream.downsample_rate == 320
