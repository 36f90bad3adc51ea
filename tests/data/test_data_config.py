"""DataConfig validation and load_manifest (synthetic, registry corpora, split selection)."""

from __future__ import annotations

import pytest

from speechssl.config import ConfigError, from_dict
from speechssl.data.audio import AudioError, BadFileSummary
from speechssl.data.config import DataConfig, default_cache_dir, load_manifest
from speechssl.data.synthetic import SyntheticConfig, config_hash


def test_defaults_and_validation():
    config = DataConfig()
    assert (config.corpus, config.split, config.crop_seconds, config.max_batch_seconds) == (
        "synthetic",
        "train",
        2.0,
        32.0,
    )
    with pytest.raises(ValueError, match=r"corpus: unknown corpus 'timit' \(expected one of: fsdd"):
        DataConfig(corpus="timit", root="/x")
    with pytest.raises(ValueError, match="root: corpus 'fsdd' needs root"):
        DataConfig(corpus="fsdd")
    with pytest.raises(ValueError, match=r"crop_seconds: expected a number of seconds in \(0, 3600\]"):
        DataConfig(crop_seconds=-1.0)
    with pytest.raises(ConfigError, match=r"synthetic.num_speakers: expected int, found 'x'"):
        from_dict(DataConfig, {"synthetic": {"num_speakers": "x"}})
    with pytest.raises(ConfigError, match=r"max_batch_seconds: expected a finite number > 0"):
        from_dict(DataConfig, {"max_batch_seconds": 0})


def test_cache_dir_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHSSL_CACHE", str(tmp_path / "cache"))
    assert default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("SPEECHSSL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "speechssl"


def test_synthetic_manifest_in_default_cache_and_split(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHSSL_CACHE", str(tmp_path))
    synthetic = SyntheticConfig(num_utterances=20, num_speakers=2)
    train = load_manifest(DataConfig(synthetic=synthetic))
    assert set(train.column("split")) == {"train"} and len(train) == 16
    assert train[0].path.is_relative_to(tmp_path / "synthetic" / config_hash(synthetic))
    everything = load_manifest(DataConfig(synthetic=synthetic, split=None))
    assert len(everything) == 20
    with pytest.raises(
        ValueError, match=r"no rows of split 'dev' in corpus 'synthetic' \(splits: test, train, valid\)"
    ):
        load_manifest(DataConfig(synthetic=synthetic, split="dev"))


def test_registry_corpus_with_options(tmp_path, write_audio):
    write_audio(tmp_path / "yes" / "a.wav", seconds=0.2)
    write_audio(tmp_path / "no" / "b.wav", seconds=0.2)
    config = from_dict(
        DataConfig,
        {
            "corpus": "folder",
            "root": str(tmp_path),
            "split": "test",
            "corpus_options": {"label_column": "keyword", "split": "test"},
        },
    )
    manifest = load_manifest(config)
    assert manifest.column("keyword") == ["no", "yes"]


def test_bad_files_found_while_building_the_manifest(broken_folder):
    config = DataConfig(corpus="folder", root=str(broken_folder), split="train")
    with pytest.raises(AudioError, match=r"b\.wav: not a readable audio file"):
        load_manifest(config)
    summary = BadFileSummary()
    assert load_manifest(config, bad_files=summary).ids == ["a", "c/d", "f"]
    assert [bad.id for bad in summary] == ["b", "c/e", "e"]
