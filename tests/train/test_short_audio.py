"""A clip shorter than the encoder's receptive field is a bad file under ``data.skip_bad``:
skipped, counted and listed, not the end of the run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechssl.cli import main
from speechssl.data import Manifest, load_corpus
from speechssl.train import load_pretrain_config, pretrain

WAV2VEC2_TINY = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1",
    "encoder.conv_channels=16", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.codebook_entries=8", "objective.codebook_dim=16", "objective.final_dim=16",
    "objective.num_negatives=4", "data.crop_seconds=0.5", "data.max_batch_seconds=4.0",
    "data.num_workers=0", "data.split=null", "optim.warmup_steps=1", "train.max_steps=1",
    "train.log_every=1", "train.checkpoint_every=1", "train.device=cpu",
)  # fmt: skip


def _corpus(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for index in range(4):
        soundfile.write(root / f"long{index}.wav", 0.1 * rng.standard_normal(16000), 16000)
    soundfile.write(root / "click.wav", 0.1 * rng.standard_normal(160), 16000)  # 10 ms
    return root


def test_a_10_ms_clip_is_skipped_and_listed(tmp_path):
    root = _corpus(tmp_path / "corpus")
    overrides = [*WAV2VEC2_TINY, "data.corpus=folder", f"data.root={root}"]
    config = load_pretrain_config(None, overrides, method="wav2vec2")
    with pytest.warns(UserWarning, match="1 bad file"):
        result = pretrain(config, tmp_path / "run")
    assert result.step == 1
    listed = json.loads((tmp_path / "run" / "bad_files.json").read_text())
    assert listed["count"] == 1
    assert listed["files"][0]["id"] == "click"
    assert listed["files"][0]["reason"].startswith("too short: 160 samples at 16000 Hz, fewer than the 400")


def test_without_skip_bad_the_short_clip_is_named(tmp_path, capsys):
    root = _corpus(tmp_path / "corpus")
    overrides = [*WAV2VEC2_TINY, "data.corpus=folder", f"data.root={root}", "data.skip_bad=false"]
    code = main(["pretrain", "--method", "wav2vec2", "--run-dir", str(tmp_path / "run"), *overrides])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "at least 400 samples" in err and str(root / "click.wav") in err


def test_a_crop_shorter_than_the_receptive_field_is_a_config_error(tmp_path):
    root = _corpus(tmp_path / "corpus")
    overrides = [*WAV2VEC2_TINY, "data.corpus=folder", f"data.root={root}", "data.crop_seconds=0.01"]
    config = load_pretrain_config(None, overrides, method="wav2vec2")
    with pytest.raises(ValueError, match=r"data\.crop_seconds: expected at least 0\.025 s \(400 samples"):
        pretrain(config, tmp_path / "run")


def test_a_manifest_row_whose_duration_is_not_its_files_is_skipped_and_listed(tmp_path):
    root = _corpus(tmp_path / "corpus")
    manifest = load_corpus("folder", root).exclude_ids({"click"})
    stale = manifest[0]
    rows = [dataclasses.replace(row, duration=100.0) if row.id == stale.id else row for row in manifest]
    Manifest(rows).save(tmp_path / "m.csv")
    overrides = [*WAV2VEC2_TINY, "data.corpus=manifest", f"data.root={tmp_path / 'm.csv'}"]
    config = load_pretrain_config(None, overrides, method="wav2vec2")
    with pytest.warns(UserWarning, match="1 bad file"):
        pretrain(config, tmp_path / "run")
    (listed,) = json.loads((tmp_path / "run" / "bad_files.json").read_text())["files"]
    assert listed["id"] == stale.id
    assert listed["reason"] == "the manifest's duration 100.000 s is not the file's 1.000 s"
