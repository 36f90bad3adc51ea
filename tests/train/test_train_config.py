"""Pretraining configs: validation messages, YAML + overrides, encoder presets, round trip."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from speechssl.config import ConfigError, from_dict, to_dict
from speechssl.methods.barlow_twins import BarlowTwinsConfig
from speechssl.models.encoder import load_encoder_preset
from speechssl.train.config import (
    OptimConfig,
    TrainConfig,
    find_pretrain_config,
    load_pretrain_config,
    pretrain_config_names,
)


def _write(tmp_path, data: dict, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


MINIMAL = {"method": "barlow_twins", "encoder": "tiny", "data": {"corpus": "synthetic"}}


def test_unknown_key_names_the_key_and_the_expected_ones():
    with pytest.raises(ConfigError, match=r"unknown key optim\.lrr \(expected one of: betas, .*lr, "):
        from_dict(OptimConfig, {"lrr": 1e-3}, where="optim")


def test_wrong_type_names_key_expected_and_found():
    with pytest.raises(ConfigError, match=r"train\.max_steps: expected int, found 'many'"):
        from_dict(TrainConfig, {"max_steps": "many"}, where="train")
    with pytest.raises(ConfigError, match=r"optim\.betas: expected a list, found 0\.9"):
        from_dict(OptimConfig, {"betas": 0.9}, where="optim")


@pytest.mark.parametrize(
    ("cls", "options", "message"),
    [
        (OptimConfig, {"lr": 0.0}, r"lr: expected a finite number > 0, found 0\.0"),
        (OptimConfig, {"betas": [0.9, 1.0]}, r"betas: expected two numbers in \[0, 1\), found \[0\.9, 1"),
        (OptimConfig, {"min_lr_ratio": 1.5}, r"min_lr_ratio: expected a number in \[0, 1\], found 1\.5"),
        (OptimConfig, {"clip_grad_norm": -1.0}, r"clip_grad_norm: expected a number > 0 or null, found -1"),
        (TrainConfig, {"grad_accum_steps": 0}, r"grad_accum_steps: expected an integer >= 1, found 0"),
        (TrainConfig, {"device": "tpu"}, r"device: expected one of \['auto', 'cpu', 'cuda'\], found 'tpu'"),
        (TrainConfig, {"precision": "fp16"}, r"precision: expected one of .*found 'fp16'"),
        (
            TrainConfig,
            {"collective_timeout_s": 0.0},
            r"collective_timeout_s: expected a finite .* > 0, found 0\.0",
        ),
        (
            TrainConfig,
            {"collective_timeout_s": float("nan")},
            r"collective_timeout_s: expected a finite .* found nan",
        ),
    ],
)
def test_post_init_validation_says_expected_and_found(cls, options, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(cls, options, where="section")


def test_yaml_and_overrides_resolve_into_typed_sections(tmp_path):
    path = _write(tmp_path, {**MINIMAL, "optim": {"lr": 2e-3}, "objective": {"lambda_": 0.01}})
    config = load_pretrain_config(path, ["optim.warmup_steps=7", "train.max_steps=12", "encoder.dim=64"])
    assert config.optim.lr == 2e-3 and config.optim.warmup_steps == 7
    assert config.optim.betas == (0.9, 0.98)
    assert config.train.max_steps == 12
    assert config.encoder == dataclasses.replace(load_encoder_preset("tiny"), dim=64)
    assert config.objective.lambda_ == 0.01
    assert config.objective.projector == [256, 256]  # the method's default, filled in


def test_the_objective_is_the_methods_typed_config_and_a_mapping_only_in_yaml(tmp_path):
    config = load_pretrain_config(_write(tmp_path, {**MINIMAL, "objective": {"lambda_": 0.01}}))
    assert isinstance(config.objective, BarlowTwinsConfig) and config.objective.lambda_ == 0.01
    written = to_dict(config)["objective"]
    assert isinstance(written, dict) and written["lambda_"] == 0.01
    assert load_pretrain_config(_write(tmp_path, to_dict(config), name="config.yaml")) == config
    with pytest.raises(
        ValueError, match="objective: expected a BarlowTwinsConfig for method 'barlow_twins', found dict"
    ):
        dataclasses.replace(config, objective=written)


def test_encoder_may_be_a_preset_a_preset_with_changes_or_a_full_mapping(tmp_path):
    tiny = load_encoder_preset("tiny")
    by_name = load_pretrain_config(_write(tmp_path, MINIMAL))
    changed = {**MINIMAL, "encoder": {"preset": "tiny", "layers": 1}}
    with_changes = load_pretrain_config(_write(tmp_path, changed, name="changed.yaml"))
    full = load_pretrain_config(_write(tmp_path, {**MINIMAL, "encoder": to_dict(tiny)}))
    assert by_name.encoder == tiny == full.encoder
    assert with_changes.encoder.layers == 1 and with_changes.encoder.dim == tiny.dim
    small = load_pretrain_config(_write(tmp_path, MINIMAL), ["encoder=small"])
    assert small.encoder == load_encoder_preset("small")


def test_errors_name_the_file_and_the_key(tmp_path):
    path = _write(tmp_path, {**MINIMAL, "train": {"max_steps": 1.5}})
    with pytest.raises(ConfigError, match=rf"{path}: train\.max_steps: expected int, found 1\.5"):
        load_pretrain_config(path)
    with pytest.raises(ConfigError, match=r"unknown key trainer \(expected one of: method, objective"):
        load_pretrain_config(_write(tmp_path, {**MINIMAL, "trainer": {}}, name="typo.yaml"))
    with pytest.raises(
        ConfigError, match=r"unknown key objective\.lambda \(expected one of: invariance_weight, lambda_"
    ):
        load_pretrain_config(path, ["train.max_steps=3", "objective.lambda=1"])
    with pytest.raises(ConfigError, match=r"unknown key encoder\.depth"):
        typo = {**MINIMAL, "encoder": {"preset": "tiny", "depth": 3}}
        load_pretrain_config(_write(tmp_path, typo, name="enc.yaml"))
    with pytest.raises(ConfigError, match=r"unknown method 'byol'"):
        load_pretrain_config(path, ["train.max_steps=3"], method="byol")
    with pytest.raises(ConfigError, match="expected a config file or a method name, found neither"):
        load_pretrain_config()


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_pretrain_config(_write(tmp_path, MINIMAL), ["encoder.dim=64", "optim.lr=3e-4"])
    saved = _write(tmp_path, to_dict(config), name="resolved.yaml")
    assert load_pretrain_config(saved) == config


def test_shipped_configs_load(tmp_path):
    assert {"barlow_twins_tiny", "barlow_twins_base"} <= set(pretrain_config_names())
    tiny = load_pretrain_config(method="barlow_twins")
    assert tiny == load_pretrain_config(find_pretrain_config("barlow_twins_tiny"))
    assert tiny.encoder == load_encoder_preset("tiny") and tiny.data.max_batch_seconds == 32.0
    assert 100 <= tiny.train.max_steps <= 1000
    with pytest.raises(ConfigError, match=r"barlow_twins_base\.yaml: data: root: .*needs root"):
        load_pretrain_config("barlow_twins_base")
    base = load_pretrain_config("barlow_twins_base", [f"data.root={tmp_path}"])
    assert base.encoder == load_encoder_preset("base") and base.objective.projector == [8192] * 3
