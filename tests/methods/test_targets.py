"""The label pipeline of ``speechssl pretrain``: HuBERT's iterations and Discrete BERT's tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from speechssl.cli import main
from speechssl.config import load_yaml
from speechssl.data import SyntheticConfig, generate_synthetic_corpus
from speechssl.methods.targets import pooling_factor, target_features, unit_targets
from speechssl.models.checkpoint import find_latest
from speechssl.models.units import UnitTargets, load_unit_tokenizer
from speechssl.train import load_pretrain_config, pretrain

TINY = [
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=2", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.synthetic.num_utterances=24", "data.synthetic.num_speakers=2", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0", "optim.warmup_steps=1", "train.max_steps=2",
    "train.log_every=1", "train.checkpoint_every=2", "train.device=cpu",
    "objective.targets.num_units=8", "objective.targets.max_frames=400",
]  # fmt: skip


def test_only_methods_with_an_empty_units_option_need_the_pipeline(tmp_path) -> None:
    assert unit_targets(load_pretrain_config("apc_tiny", []).objective) is None
    assert (
        unit_targets(load_pretrain_config("hubert_tiny", [f"objective.units={tmp_path}"]).objective) is None
    )
    targets = unit_targets(load_pretrain_config("hubert_tiny", []).objective)
    assert targets == UnitTargets(layer=1, num_units=100, max_frames=100_000)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(iteration=2), "expected the previous iteration's run for iteration >= 2"),
        (dict(teacher="runs/it1"), "found iteration=1, teacher='runs/it1'"),
        (dict(kind="quantizer"), "teacher: expected the run whose quantizer"),
        (dict(iteration=0, teacher="x"), "iteration: expected a positive integer"),
    ],
)
def test_targets_errors_name_the_option(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        UnitTargets(**options)


def test_frames_that_cannot_pool_into_the_students_are_an_error() -> None:
    assert pooling_factor(640, 160, "MFCC") == 4
    with pytest.raises(
        ValueError, match=r"MFCC's frames \(160 samples\).*\(400 samples\), found a ratio of 2\.5"
    ):
        pooling_factor(400, 160, "MFCC")


def test_hubert_iterations_through_the_cli(tmp_path) -> None:
    corpus = [f"data.root={tmp_path / 'corpus'}", *TINY]
    first, second = tmp_path / "it1", tmp_path / "it2"
    assert main(["pretrain", "--method", "hubert", "--run-dir", str(first), *corpus]) == 0
    tokenizer = load_unit_tokenizer(first / "units")
    assert tokenizer.config.features.source == "mfcc" and tokenizer.config.features.pool == 4
    assert tokenizer.num_units == 8
    assert load_yaml(find_latest(first) / "config.yaml")["objective"]["units"] == str(first / "units")

    args = ["pretrain", "--method", "hubert", "--iteration", "2", "--teacher", str(first)]
    assert main([*args, "--run-dir", str(second), *corpus]) == 0
    tokenizer = load_unit_tokenizer(second / "units")
    features = tokenizer.config.features
    assert (features.source, features.layer, features.pool) == ("encoder", 1, 1)
    objective = load_yaml(find_latest(second) / "config.yaml")["objective"]
    assert objective["targets"]["iteration"] == 2 and objective["targets"]["teacher"] == str(first)

    stamp = (second / "units" / "tokenizer.safetensors").stat().st_mtime_ns
    assert main([*args, "--run-dir", str(second), "--resume", *corpus]) == 0
    assert (second / "units" / "tokenizer.safetensors").stat().st_mtime_ns == stamp  # reused, not refitted


def test_iteration_two_without_a_teacher_fails_before_training(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["pretrain", "--method", "hubert", "--iteration", "2", "--run-dir", str(run), *TINY]) == 2
    assert "expected the previous iteration's run" in capsys.readouterr().err
    assert not run.exists()


def test_mfcc_targets_of_an_8_khz_encoder_are_computed_at_8_khz(tmp_path) -> None:
    features = target_features(UnitTargets(), student_rate=320, sample_rate=8000)  # fbank at 8 kHz: 40 ms
    assert features.config.sample_rate == features.sample_rate == 8000
    assert features.mfcc.hop_length == 80 and features.config.pool == 4  # 10 ms MFCC frames at 8 kHz
    assert features.mfcc.filterbank.config.sample_rate == 8000
    assert int(features.output_lengths(torch.tensor(8000))) == 8000 // 80 // 4 + 1  # 1 s, centred frames
    at_16k = target_features(UnitTargets(), student_rate=640, sample_rate=16000)
    assert (at_16k.mfcc.hop_length, at_16k.config.pool, at_16k.sample_rate) == (160, 4, 16000)


def test_units_are_fitted_without_the_files_pretraining_skips(tmp_path, tiny_hubert_overrides) -> None:
    """With ``data.skip_bad`` (the default) an unreadable file stops neither the k-means of the
    units nor pretraining; it is listed in ``bad_files.json``."""
    corpus = generate_synthetic_corpus(SyntheticConfig(num_utterances=12, num_speakers=2), tmp_path / "c")
    folder = Path(corpus[0].path).parent
    (folder / "broken.wav").write_bytes(b"not audio")
    overrides = [*tiny_hubert_overrides, "data.corpus=folder", f"data.root={folder}", "data.split=null"]
    result = pretrain(load_pretrain_config(None, overrides, method="hubert"), tmp_path / "run")
    assert result.checkpoint is not None
    listed = {
        Path(bad["path"]).name
        for bad in json.loads((tmp_path / "run" / "bad_files.json").read_text())["files"]
    }
    assert listed == {"broken.wav"}
