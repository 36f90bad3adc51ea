"""``speechssl units fit|label|score`` end to end on the synthetic corpus and a subset of FSDD."""

from __future__ import annotations

import json

from speechssl.cli import main
from speechssl.models.units import load_unit_tokenizer

SYNTHETIC = ["--corpus", "synthetic", "synthetic.num_utterances=16", "synthetic.num_speakers=2"]


def test_fit_label_score_on_the_synthetic_corpus(tmp_path, capsys):
    corpus = [*SYNTHETIC[:2], "--data-root", str(tmp_path / "corpus"), *SYNTHETIC[2:]]
    tokenizer_dir = tmp_path / "tokenizer"
    code = main(["units", "fit", "--features", "mfcc", "--frame-rate-of", "tiny", "--k", "12",
                 "--max-frames", "300", "--backend", "sklearn", "--output", str(tokenizer_dir), *corpus])  # fmt: skip
    assert code == 0
    report = json.loads((tokenizer_dir / "fit_report.json").read_text())
    assert report["frames"] <= 300 and report["k"] == 12 and report["downsample_rate"] == 640
    tokenizer = load_unit_tokenizer(tokenizer_dir)
    assert tokenizer.num_units == 12 and tokenizer.config.features.pool == 4
    capsys.readouterr()

    cache = ["--cache-dir", str(tmp_path / "units_cache")]
    assert main(["units", "label", "--units", str(tokenizer_dir), *cache, *corpus]) == 0
    first = capsys.readouterr().out
    assert first.startswith("wrote units of 16 utterances: ")
    entry = first.split(": ", 1)[1].strip()
    assert (tmp_path / "units_cache").joinpath(entry).is_dir()
    assert main(["units", "label", "--units", str(tokenizer_dir), *cache, *corpus]) == 0
    assert capsys.readouterr().out == f"reused units of 16 utterances: {entry}\n"

    scores_file = tmp_path / "scores" / "phone.json"
    args = ["units", "score", "--units", str(tokenizer_dir), "--truth", "phone", "--output", str(scores_file)]
    assert main([*args, *cache, *corpus]) == 0
    phone = json.loads(scores_file.read_text())
    assert phone["labels"] == entry and phone["truth"] == "phone"
    assert 0.1 < phone["pnmi"] <= 1.0 and 0.0 < phone["label_purity"] <= 1.0
    assert phone["num_labels"] >= 5  # silence plus several of the 9 phones
    assert 1.0 < phone["perplexity"] <= 12 and 0 < phone["usage"] <= 1.0
    capsys.readouterr()
    assert main(["units", "score", "--units", str(tokenizer_dir), "--truth", "word", *cache, *corpus]) == 0
    word = json.loads(capsys.readouterr().out)
    assert word["frames"] == phone["frames"] and word["pnmi"] < phone["pnmi"]


def test_cli_errors_name_the_option(tmp_path, capsys):
    corpus = [*SYNTHETIC[:2], "--data-root", str(tmp_path / "corpus"), *SYNTHETIC[2:]]
    assert (
        main(["units", "fit", "--features", "nowhere", "--k", "4", "--output", str(tmp_path / "t"), *corpus])
        == 2
    )
    assert (
        "--features: expected 'mfcc', a run/checkpoint directory or an upstream spec (hf:<dir>, fbank, random:<preset>), found 'nowhere'"
        in capsys.readouterr().err
    )
    assert main(["units", "label", "--quantizer", str(tmp_path / "none"), *corpus]) == 2
    assert f"{tmp_path / 'none'}: expected a checkpoint directory" in capsys.readouterr().err


def test_fit_and_score_on_fsdd(shared_data, tmp_path, capsys):
    corpus = ["--corpus", "fsdd", "--data-root", str(shared_data("fsdd")), "--max-utterances", "24"]
    tokenizer_dir = tmp_path / "tokenizer"
    args = ["units", "fit", "--features", "mfcc", "--k", "16", "--max-frames", "2000", "--output"]
    assert main([*args, str(tokenizer_dir), *corpus]) == 0
    capsys.readouterr()
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["units", "score", "--units", str(tokenizer_dir), "--truth", "keyword", *cache, *corpus]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 < scores["pnmi"] < 1.0 and scores["used_units"] >= 8
    assert 0.0 < scores["label_purity"] <= 1.0 and scores["num_labels"] >= 5
