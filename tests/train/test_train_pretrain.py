"""End to end: config → synthetic corpus → tiny encoder → Barlow Twins → checkpoints → upstream."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import librosa
import numpy as np
import pytest
import torch
from preemption import assert_same_weights, preempted_at
from safetensors.torch import load_file

from speechssl.augment.waveform import RandomCrop
from speechssl.config import ConfigError
from speechssl.models.checkpoint import find_latest, list_checkpoints, load_encoder
from speechssl.train import load_pretrain_config, pretrain
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import (
    LoaderData,
    build_pretrain_data,
    build_pretrain_method,
    check_min_duration,
)


def test_pretrain_end_to_end_then_resume_further(tmp_path, tiny_pretrain_overrides):
    overrides = [*tiny_pretrain_overrides, f"data.root={tmp_path / 'corpus'}"]
    config = load_pretrain_config(None, overrides, method="barlow_twins")
    result = pretrain(config, tmp_path / "run")

    assert result.step == 3 and math.isfinite(result.loss)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step_00000002", "step_00000003"]
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert {"invariance", "redundancy", "audio_seconds_per_second"} <= records[0].keys()
    assert load_pretrain_config(tmp_path / "run" / "step_00000003" / "config.yaml") == config

    encoder = load_encoder(result.checkpoint)
    assert encoder.config == config.encoder
    features = encoder.eval()(torch.randn(2, 8000), torch.tensor([8000, 6000]))
    frames = int(encoder.output_lengths(torch.tensor(8000)))
    assert features.last_hidden_state.shape == (2, frames, 32)
    assert torch.isfinite(features.last_hidden_state).all()

    longer = load_pretrain_config(None, [*overrides, "train.max_steps=4"], method="barlow_twins")
    resumed = pretrain(longer, tmp_path / "run", resume=True)
    assert resumed.step == 4 and find_latest(tmp_path / "run").name == "step_00000004"
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 3, 4]


def test_real_pipeline_resumes_bit_identically(tmp_path, monkeypatch, tiny_pretrain_overrides):
    overrides = [
        *tiny_pretrain_overrides,
        f"data.root={tmp_path / 'corpus'}",
        "data.num_workers=1",
        "train.max_steps=4",
        "train.checkpoint_every=2",
    ]
    config = load_pretrain_config(None, overrides, method="barlow_twins")
    straight = pretrain(config, tmp_path / "straight")

    with preempted_at(monkeypatch, LoaderData, 4):
        pretrain(config, tmp_path / "resumed")
    assert find_latest(tmp_path / "resumed").name == "step_00000002"
    resumed = pretrain(config, tmp_path / "resumed", resume=True)

    assert_same_weights(resumed.checkpoint, straight.checkpoint)


def test_bad_files_are_skipped_and_listed_or_stop_the_run(tmp_path, tiny_pretrain_overrides):
    from speechssl.data import AudioError, SyntheticConfig, generate_synthetic_corpus

    corpus = tmp_path / "wavs"
    generate_synthetic_corpus(SyntheticConfig(num_utterances=20, num_speakers=2), corpus)
    (corpus / "broken.wav").write_bytes(b"RIFF but not really audio")
    overrides = [*tiny_pretrain_overrides, "data.corpus=folder", f"data.root={corpus}", "train.max_steps=2"]

    config = load_pretrain_config(None, overrides, method="barlow_twins")
    with pytest.warns(UserWarning, match=r"1 bad file\(s\) skipped"):
        result = pretrain(config, tmp_path / "skip")
    assert result.step == 2
    listed = json.loads((tmp_path / "skip" / "bad_files.json").read_text())
    assert listed["count"] == 1 and listed["files"][0]["path"].endswith("broken.wav")

    strict = load_pretrain_config(None, [*overrides, "data.skip_bad=false"], method="barlow_twins")
    with pytest.raises(AudioError, match=r"broken\.wav"):
        pretrain(strict, tmp_path / "strict")


def test_barlow_twins_batches_never_hold_a_single_utterance(tmp_path, tiny_pretrain_overrides):
    # 41 utterances in batches of 8: some bucket tail would hold one utterance, which Barlow
    # Twins' batch statistics cannot use; the sampler takes the method's minimum of 2.
    overrides = [
        *tiny_pretrain_overrides,
        f"data.root={tmp_path / 'corpus'}",
        "data.synthetic.num_utterances=41",
    ]
    data = build_pretrain_data(load_pretrain_config(None, overrides, method="barlow_twins"))
    assert data.sampler.min_batch_size == 2
    for epoch in range(5):
        data.sampler.set_epoch(epoch)
        assert min(len(batch) for batch in data.sampler) >= 2


def test_pretrain_from_python_runs_the_hubert_label_pipeline(tmp_path, tiny_hubert_overrides):
    config = load_pretrain_config(
        None, [*tiny_hubert_overrides, f"data.root={tmp_path / 'corpus'}"], method="hubert"
    )
    assert config.objective.units == ""  # nothing made yet: pretrain() fits the tokenizer itself
    result = pretrain(config, tmp_path / "run")

    assert result.step == 2 and math.isfinite(result.loss)
    assert config.objective.units == ""  # the caller's config is left as it was
    units = tmp_path / "run" / "units"
    assert (units / "tokenizer.yaml").is_file() and (units / "fit_report.json").is_file()
    saved = load_pretrain_config(result.checkpoint / "config.yaml")
    assert saved.objective.units == str(units) and saved.objective.targets == config.objective.targets
    assert load_file(result.checkpoint / "model.safetensors")["unit_embeddings"].shape == (8, 16)


def test_pretraining_at_8_khz_builds_mel_filters_and_crops_at_8_khz(tmp_path, tiny_pretrain_overrides):
    overrides = [*tiny_pretrain_overrides, f"data.root={tmp_path / 'corpus'}", "train.max_steps=1"]
    config = load_pretrain_config(
        None, [*overrides, "data.sample_rate=8000", "encoder.sample_rate=8000"], method="barlow_twins"
    )
    method = build_pretrain_method(config)
    filterbank = method.encoder.frontend.filterbank
    assert (filterbank.config.sample_rate, filterbank.config.win_length, filterbank.hop_length) == (
        8000,
        200,
        80,
    )
    reference = librosa.filters.mel(sr=8000, n_fft=200, n_mels=40)  # (n_mels, n_freqs), Slaney, 0-4 kHz
    torch.testing.assert_close(
        filterbank.mel_filters.double(), torch.from_numpy(reference).double().T, atol=1e-6, rtol=1e-4
    )
    crops = [t for t in method.view.waveform.transforms if isinstance(t, RandomCrop)]
    assert [crop.num_samples for crop in crops] == [4000]  # objective.view.crop_seconds=0.5 at 8 kHz
    data = build_pretrain_data(config)
    batch = next(data.loader_for_epoch(0, 0))
    assert data.sample_rate == 8000 and int(batch.lengths.max()) <= 6000  # data.crop_seconds=0.75
    result = pretrain(config, tmp_path / "run")
    assert result.step == 1 and math.isfinite(result.loss)
    assert load_encoder(result.checkpoint).sample_rate == 8000

    mismatched = load_pretrain_config(None, [*overrides, "data.sample_rate=8000"], method="barlow_twins")
    message = r"data\.sample_rate: expected encoder\.sample_rate = 16000 Hz .* found 8000 Hz"
    with pytest.raises(ConfigError, match=message):
        build_pretrain_method(mismatched)
    with pytest.raises(ConfigError, match=message):
        pretrain(mismatched, tmp_path / "mismatched")


def test_the_pipeline_refuses_utterances_shorter_than_the_front_end_reads():
    manifest = [SimpleNamespace(id="long", path="long.wav"), SimpleNamespace(id="short", path="short.wav")]
    dataset = SimpleNamespace(
        effective_durations=lambda: np.array([1.0, 0.0249]),
        sample_rate=16000,
        describe_item=lambda i: f"{manifest[i].id!r} ({manifest[i].path})",
    )
    check_min_duration(dataset, 1)
    with pytest.raises(ValueError, match=r"at least 400 samples.*found 398 in 'short' \(short\.wav\)"):
        check_min_duration(dataset, 400)
    dataset.effective_durations = lambda: np.array([1.0, 0.025])
    check_min_duration(dataset, 400)
