"""SUPERB ASV on VoxCeleb1's native layout: the trial list, the x-vector head with AM-softmax,
EER/minDCF against independent computations, and the task end to end through the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve
from superb_fixtures import write_voxceleb1

from speechssl.cli import main
from speechssl.data import load_corpus
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.heads import AdditiveMarginSoftmax, XVectorHead
from speechssl.downstream.metrics import equal_error_rate, min_dcf
from speechssl.downstream.tasks import get_task
from speechssl.downstream.verification import (
    XVectorTrainingConfig,
    held_out_speakers,
    read_trials,
    train_xvector_verification,
)
from speechssl.upstream import build_upstream

FAST = {"hidden": 32, "pooled_dim": 48, "batch_size": 8, "max_epochs": 8, "eval_steps": None, "lr": 3e-3}


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=40, unique=True),
    data=st.data(),
)
def test_eer_equals_the_voxceleb_reference_computation(scores, data):
    labels = data.draw(st.lists(st.integers(0, 1), min_size=len(scores), max_size=len(scores)))
    labels[0], labels[1] = 0, 1
    # the VoxCeleb baseline's EER: where 1 − TPR(FPR) crosses FPR on the linearly interpolated ROC
    fpr, tpr, _ = roc_curve(labels, scores)
    reference = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
    assert equal_error_rate(scores, labels)[0] == pytest.approx(reference, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    scores=st.lists(st.integers(0, 10), min_size=3, max_size=30),
    data=st.data(),
    p_target=st.sampled_from([0.01, 0.05, 0.5]),
)
def test_min_dcf_equals_the_definition_over_every_threshold(scores, data, p_target):
    labels = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(scores), max_size=len(scores))))
    labels[0], labels[1] = 0, 1
    scores = np.array(scores, dtype=float)
    costs = []
    for threshold in [*np.unique(scores), np.inf]:
        accepted = scores >= threshold
        miss = np.sum(labels.astype(bool) & ~accepted) / labels.sum()
        false_alarm = np.sum(~labels.astype(bool) & accepted) / (len(labels) - labels.sum())
        costs.append(miss * p_target + false_alarm * (1 - p_target))
    expected = min(costs) / min(p_target, 1 - p_target)
    assert min_dcf(scores, labels, p_target=p_target) == pytest.approx(expected)


def test_min_dcf_of_a_voxceleb_style_trial_list_by_hand():
    # 100 trials: 10 targets scored 0.50..0.95, 90 non-targets at 0.00..0.89 (0.01 apart).
    # p_target = 0.01, C_miss = C_fa = 1: DCF(θ) = 0.01·P_miss + 0.99·P_fa, normalised by 0.01.
    # Accepting a non-target costs 0.99/90 / 0.01 = 1.1 > 1 (rejecting all), so only thresholds
    # above 0.89 count: θ = 0.90 accepts the targets 0.90, 0.95 -> P_miss = 8/10 -> minDCF = 0.8.
    targets = np.array([0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95])
    non_targets = np.arange(90) / 100
    scores = np.concatenate([targets, non_targets])
    labels = np.array([1] * 10 + [0] * 90)
    assert min_dcf(scores, labels) == pytest.approx(0.8)
    # with p_target = 0.5 a false alarm is cheap: θ = 0.50 misses none, accepts 40 non-targets
    # (0.50..0.89): (0.5·40/90) / 0.5 = 4/9; θ = 0.90: 0.8; in between e.g. θ = 0.70: 0.6 + 20/90.
    assert min_dcf(scores, labels, p_target=0.5) == pytest.approx(4 / 9)


def test_am_softmax_by_hand():
    loss = AdditiveMarginSoftmax(2, 3, scale=2.0, margin=0.5)
    with torch.no_grad():
        loss.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]))
    x = torch.tensor([[2.0, 0.0]])  # cosines with the classes: 1, 0, −1
    # target 0: logits 2·(1 − 0.5), 2·0, 2·(−1) = 1, 0, −2
    expected = -np.log(np.exp(1) / (np.exp(1) + np.exp(0) + np.exp(-2)))
    assert float(loss(x, torch.tensor([0])).detach()) == pytest.approx(expected)
    plain = AdditiveMarginSoftmax(2, 3, scale=1.0, margin=0.0)
    plain.weight = loss.weight
    assert float(plain(x, torch.tensor([1])).detach()) == pytest.approx(
        float(F.cross_entropy(torch.tensor([[1.0, 0, -1]]), torch.tensor([1])))
    )


def test_xvector_head_sizes_and_padding():
    torch.manual_seed(0)
    head = XVectorHead(in_dim=5, hidden=16, pooled_dim=24)
    assert XVectorHead.receptive_field == 15
    assert [tuple(layer.weight.shape) for layer in head.tdnn] == [
        (16, 16, 5), (16, 16, 3), (16, 16, 3), (16, 16, 1), (24, 16, 1),
    ]  # fmt: skip
    x = torch.randn(2, 30, 5)
    lengths = torch.tensor([30, 20])
    embeddings = head.embed(x, lengths)
    assert embeddings.shape == (2, 16) and head(x, lengths).shape == (2, 16)
    alone = head.embed(x[1:, :20], lengths[1:])
    assert torch.allclose(embeddings[1:], alone, atol=1e-5), "padded frames must not change the x-vector"
    with pytest.raises(ValueError, match="reads 15 frames, found an utterance of 14"):
        head.embed(x[:, :14], torch.tensor([14, 14]))


def test_voxceleb1_loader_splits_trial_speakers_into_test(tmp_path):
    root = write_voxceleb1(tmp_path / "VoxCeleb1")
    manifest = load_corpus("voxceleb1_verification", root)
    assert len(manifest) == 36 and manifest.ids[0] == "id10000/video0/00001"
    split_of = dict(zip(manifest.column("speaker"), manifest.column("split"), strict=True))
    assert sorted(s for s, split in split_of.items() if split == "test") == ["id10006", "id10007", "id10008"]
    trials = read_trials(root / "veri_test.txt")
    assert len(trials) == 36 and trials[0].target and trials[0].a == "id10006/video0/00001"
    (root / "veri_test.txt").write_text("1 id10006/video0/00001.wav id19999/x/00001.wav\n")
    with pytest.raises(FileNotFoundError, match=r"names 1 file\(s\) in no wav folder.*id19999/x/00001.wav"):
        load_corpus("voxceleb1_verification", root)
    (root / "veri_test.txt").write_text("yes id10006/video0/00001.wav id10007/video0/00001.wav\n")
    with pytest.raises(
        ValueError, match=r"veri_test.txt, line 1: expected '\{1\|0\} enrolment.wav test.wav'"
    ):
        load_corpus("voxceleb1_verification", root)


def test_xvector_defaults_are_s3prls_budget_and_crops():
    config = XVectorTrainingConfig()
    # amsoftmax.yaml: total_steps 200000, save_step 10000 (each checkpoint scored), max_timestep 128000
    assert (config.max_epochs, config.eval_steps, config.patience, config.crop_seconds) == (
        20,
        10_000,
        None,
        8.0,
    )
    assert (config.batch_size, config.lr, config.scale, config.margin) == (512, 5e-5, 30.0, 0.4)
    with pytest.raises(ValueError, match="patience: expected an integer >= 1 or null, found 0"):
        XVectorTrainingConfig(patience=0)
    with pytest.raises(ValueError, match="eval_steps: expected an integer >= 1 or null, found 0"):
        XVectorTrainingConfig(eval_steps=0)


def test_held_out_speakers_are_fixed_and_leave_two_to_train():
    speakers = [f"s{i}" for i in range(10)]
    held = held_out_speakers(speakers, 0.05)
    assert len(held) == 2 and held == held_out_speakers(list(reversed(speakers)), 0.05)
    assert len(held_out_speakers(speakers[:4], 0.9)) == 2
    with pytest.raises(ValueError, match="at least 4"):
        held_out_speakers(speakers[:3], 0.5)


def test_xvector_head_learns_the_fixture_speakers(tmp_path):
    root = write_voxceleb1(tmp_path / "VoxCeleb1", dev_speakers=8, test_speakers=3, per_speaker=4)
    manifest = load_corpus("voxceleb1_verification", root)
    frames = FeatureCache(tmp_path / "cache").frames(build_upstream("fbank"), manifest)
    trials = read_trials(root / "veri_test.txt")
    config = XVectorTrainingConfig(**FAST, valid_fraction=0.25)
    result = train_xvector_verification(frames, manifest, trials, config, seed=0)
    assert result.num_speakers == 6 and result.num_trials == 36
    assert 1 <= result.best_epoch <= result.epochs_run <= 8
    assert result.eer <= 0.2, result
    assert 0.0 <= result.min_dcf <= 1.0 and len(result.layer_weights) == frames.frames.shape[1]
    again = train_xvector_verification(frames, manifest, trials, config, seed=0)
    assert again.eer == result.eer, "a seed must reproduce its run"
    short = dataclasses.replace(config, max_epochs=2)
    whole = train_xvector_verification(frames, manifest, trials, short, seed=0)
    cropped = train_xvector_verification(
        frames, manifest, trials, dataclasses.replace(short, crop_seconds=0.2), 0
    )
    assert cropped.epochs_run == 2 and (cropped.eer, cropped.min_dcf) != (whole.eer, whole.min_dcf), (
        "0.2 s crops train otherwise"
    )
    with pytest.raises(ValueError, match=r"crop_seconds: expected crops of at least 15 frames .* 0.1 s = 10"):
        train_xvector_verification(frames, manifest, trials, dataclasses.replace(config, crop_seconds=0.1), 0)
    with pytest.raises(ValueError, match="id19999/x/00001 is not in the corpus manifest"):
        train_xvector_verification(
            frames, manifest, [*trials[:1], type(trials[0])(True, "id19999/x/00001", trials[0].b)], config, 0
        )


def test_superb_asv_through_the_benchmark_command(tmp_path, capsys):
    write_voxceleb1(tmp_path / "data" / "VoxCeleb1", dev_speakers=5)
    argv = ["benchmark", "--upstreams", "fbank", "--tasks", "superb_asv", "--seeds", "1"]
    argv += ["--data-root", str(tmp_path / "data"), "--output", str(tmp_path / "out")]
    argv += [
        "--cache-dir",
        str(tmp_path / "c"),
        *(f"xvector.{k}={'null' if v is None else v}" for k, v in FAST.items()),
    ]
    assert main([*argv, "xvector.max_epochs=2", "xvector.valid_fraction=0.4"]) == 0
    assert "| superb_asv |" in capsys.readouterr().out
    row = json.loads((tmp_path / "out" / "runs" / "fbank" / "superb_asv" / "seed_0.json").read_text())
    assert row["metric"] == "eer" and 0.0 <= row["value"] <= 1.0 and 0.0 <= row["min_dcf"] <= 1.0
    assert "s3prl sv_voxceleb1" in row["protocol"] and row["head"]["margin"] == 0.4
    task = get_task("superb_asv")
    assert task.folder == "VoxCeleb1" and task.trials == "veri_test.txt"
    cleaned = tmp_path / "data" / "VoxCeleb1" / "veri_test2.txt"
    cleaned.write_text(
        "".join(f"1 {a} {b}\n" for a, b in [("id10005/video0/00001.wav", "id10005/video1/00002.wav")])
    )
    manifest = dataclasses.replace(task, trials="veri_test2.txt").load(tmp_path / "data")
    assert sorted(set(manifest.filter(split="test").column("speaker"))) == ["id10005"]
    assert main([*argv, "xvector.margin=-1"]) == 2
    assert "scale/margin: expected scale > 0 and margin >= 0" in capsys.readouterr().err
