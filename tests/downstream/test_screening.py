"""Evaluation applies pretraining's policy to bad files: skipped, counted and listed, refusing
only when a split would lose more than ``max_bad_fraction`` of its utterances."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile

from speechssl.cli import main
from speechssl.data import SyntheticConfig, generate_synthetic_corpus
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.evaluate import run_evaluation
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.runner import probe_upstreams
from speechssl.downstream.screening import usable_rows
from speechssl.upstream import build_upstream


@pytest.fixture
def corpus(tmp_path):
    """60 synthetic utterances, of which one train file is not audio and one is a 10 ms clip."""
    manifest = generate_synthetic_corpus(SyntheticConfig(num_utterances=60, num_speakers=2), tmp_path / "c")
    train = [row for row in manifest if row.split == "train"]
    train[0].path.write_bytes(b"this is not a WAV file")
    soundfile.write(train[1].path, np.zeros(160, dtype=np.float32), 16000)
    return manifest, train[0], train[1]


def test_a_probe_skips_counts_and_lists_an_unreadable_file(tmp_path, corpus):
    manifest, broken, _ = corpus
    plan = EvaluationPlan(["gender"], [0], FeatureCache(enabled=False))
    with pytest.warns(UserWarning, match="1 bad file"):
        rows = probe_upstreams(["fbank"], manifest, plan, layer="last", output=tmp_path / "out")
    assert len(rows) == 1 and 0.0 <= rows[0]["value"] <= 1.0
    listed = json.loads((tmp_path / "out" / "bad_files.json").read_text())
    assert [record["id"] for record in listed["files"]] == [broken.id]
    assert listed["files"][0]["reason"].startswith("not a readable audio file")


def test_the_receptive_field_of_the_upstream_decides_what_is_too_short(corpus):
    manifest, broken, click = corpus
    kept, bad = usable_rows(manifest, 16000, min_samples=1)
    assert bad.ids == {broken.id} and len(kept) == len(manifest) - 1
    waveform = build_upstream("random:cpc")
    assert waveform.min_samples > 160
    kept, bad = usable_rows(manifest, waveform.sample_rate, waveform.min_samples)
    assert bad.ids == {broken.id, click.id} and len(kept) == len(manifest) - 2
    assert next(b for b in bad if b.id == click.id).reason.startswith("too short: 160 samples at 16000 Hz")


def test_a_split_losing_more_than_max_bad_fraction_is_refused(tmp_path, corpus, capsys):
    manifest, broken, _ = corpus
    with pytest.raises(ValueError, match=r"split 'train': expected at most max_bad_fraction=0 .* found 1"):
        usable_rows(manifest, 16000, max_bad_fraction=0.0)
    manifest.save(tmp_path / "m.csv")
    args = ["probe", "--manifest", str(tmp_path / "m.csv"), "--task", "gender", "--upstream", "fbank"]
    assert main([*args, "--no-cache", "--max-bad-fraction", "0"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--max-bad-fraction=0" in err and str(broken.path) in err
    assert main([*args, "--no-cache", "--max-bad-fraction", "1.5"]) == 2
    assert "--max-bad-fraction: expected a number in [0, 1], found 1.5" in capsys.readouterr().err


def test_a_benchmark_task_skips_counts_and_lists_an_unreadable_file(tmp_path, corpus):
    manifest, broken, _ = corpus
    manifest.save(tmp_path / "m.csv")
    plan = EvaluationPlan([f"{tmp_path / 'm.csv'}:gender"], [0], FeatureCache(enabled=False))
    with pytest.warns(UserWarning, match="1 bad file"):
        (row,) = run_evaluation(["fbank"], plan, tmp_path / "report")
    assert 0.0 <= row.value <= 1.0
    (listing,) = (tmp_path / "report" / "runs").rglob("bad_files.json")
    assert [record["id"] for record in json.loads(listing.read_text())["files"]] == [broken.id]
