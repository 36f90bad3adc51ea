"""A corpus with no loader, labels and speaker in its file names, from a folder to a benchmark report
in the three commands the README shows: data manifest --pattern, data split --folds, benchmark --tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechssl.cli import main
from speechssl.downstream.row import Row
from speechssl.downstream.statistics import results_table, summarize

EMOTIONS = {"ANG": 300.0, "HAP": 600.0, "SAD": 150.0}  # CREMA-D code -> tone of the fixture's utterances
SPEAKERS = ("1001", "1002", "1003", "1004", "1005", "1006")
SENTENCES = ("DFA", "IEO")


def write_crema_d_like(folder: Path, sample_rate: int = 22050) -> Path:
    """36 files named as CREMA-D's (``{speaker}_{sentence}_{emotion}_{level}.wav``) at 22.05 kHz,
    each emotion a tone of its own plus each speaker's noise."""
    folder.mkdir(parents=True)
    for s, speaker in enumerate(SPEAKERS):
        rng = np.random.default_rng(s)
        for sentence in SENTENCES:
            for code, frequency in EMOTIONS.items():
                time = np.arange(int(0.4 * sample_rate)) / sample_rate
                tone = 0.3 * np.sin(2 * np.pi * frequency * (1 + 0.02 * s) * time)  # (samples,)
                audio = tone + 0.02 * rng.standard_normal(len(time))
                soundfile.write(str(folder / f"{speaker}_{sentence}_{code}_XX.wav"), audio, sample_rate)
    return folder


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def test_three_commands_take_a_corpus_without_loader_to_a_report_with_speaker_folds(tmp_path, capsys):
    corpus = write_crema_d_like(tmp_path / "AudioWAV")
    (corpus / "README.txt").write_text("not audio")
    manifest, folds, output = tmp_path / "crema.csv", tmp_path / "crema_folds.csv", tmp_path / "report"

    assert main(["data", "manifest", str(corpus), "--pattern", "crema-d", "-o", str(manifest)]) == 0
    assert "wrote 36 utterances of 6 speakers" in capsys.readouterr().out
    assert main(["data", "split", str(manifest), "--folds", "5", "-o", str(folds)]) == 0
    counts = capsys.readouterr().out.splitlines()[0]
    sizes = [
        int(part.split(": ")[1]) for part in counts.removeprefix("5 speaker-disjoint folds: ").split(", ")
    ]
    assert sorted(sizes) == [6, 6, 6, 6, 12], "6 speakers of 6 files each, dealt to 5 folds"
    benchmark = ["benchmark", "--tasks", f"{folds}:emotion", "--upstreams", "fbank,mfcc", "--seeds", "3"]
    benchmark += ["--output", str(output), "--cache-dir", str(tmp_path / "cache"), "max_epochs=5"]
    assert main(benchmark) == 0

    report = (output / "report.md").read_text()
    assert "| emotion_crema_folds | test accuracy | the manifest's fold column (fold k tests" in report
    assert "Paired tests against fbank" in report
    rows = sorted((output / "runs" / "mfcc" / "emotion_crema_folds").glob("seed_*.json"))
    assert [path.name for path in rows] == ["seed_0.json", "seed_1.json", "seed_2.json"]
    records = [json.loads(path.read_text()) for path in rows]
    assert all(
        len(r["fold_values"]) == 5 and r["value"] == pytest.approx(np.mean(r["fold_values"])) for r in records
    )
    summary = results_table([Row.from_dict(record) for record in records])["emotion_crema_folds"]["mfcc"]
    assert summary == summarize(np.ravel([r["fold_values"] for r in records])), "the CI is over folds x seeds"
    stamps = [path.stat().st_mtime_ns for path in rows]
    capsys.readouterr()
    assert main(benchmark) == 0  # a rerun reads the finished seeds back
    assert [path.stat().st_mtime_ns for path in rows] == stamps
    assert "feature cache: 0 hit(s), 0 miss(es)" in capsys.readouterr().out

    # new folds (another split seed), same audio: the seeds are recomputed, the features reused
    assert main(["data", "split", str(manifest), "--folds", "5", "--seed", "1", "-o", str(folds)]) == 0
    capsys.readouterr()
    assert main(benchmark) == 0
    assert all(path.stat().st_mtime_ns != stamp for path, stamp in zip(rows, stamps, strict=True))
    assert (
        "feature cache: 4 hit(s), 0 miss(es)" in capsys.readouterr().out
    )  # and the ceiling's log-mel, twice


def test_speaker_folds_option_and_bad_specs(tmp_path, capsys):
    corpus = write_crema_d_like(tmp_path / "AudioWAV")
    manifest = tmp_path / "crema.csv"
    assert main(["data", "manifest", str(corpus), "--pattern", "crema-d", "-o", str(manifest)]) == 0
    common = ["--upstreams", "fbank", "--seeds", "1", "--cache-dir", str(tmp_path / "c"), "max_epochs=3"]
    spec = f"{manifest}:emotion:speaker-folds=3"
    assert main(["benchmark", "--tasks", spec, "--output", str(tmp_path / "o"), *common]) == 0
    assert "emotion_crema_speaker3folds" in capsys.readouterr().out
    # every row is in train: the split column alone has no valid/test rows
    assert (
        main(["benchmark", "--tasks", f"{manifest}:emotion", "--output", str(tmp_path / "o2"), *common]) == 2
    )
    assert "the split column needs train, valid and test rows (valid chooses" in capsys.readouterr().err
    assert main(["benchmark", "--tasks", f"{manifest}:mood", "--output", str(tmp_path / "o3"), *common]) == 2
    assert "expected a label column of the manifest, found ['emotion', 'level', 'sentence', 'speaker']" in (
        capsys.readouterr().err
    )
    assert (
        main(["benchmark", "--tasks", f"{manifest}:emotion:folds=3", "--output", str(tmp_path), *common]) == 2
    )
    assert "unknown option 'folds=3' (expected speaker-folds=K)" in capsys.readouterr().err
    assert (
        main(
            [
                "benchmark",
                "--tasks",
                f"{manifest}:speaker:speaker-folds=3",
                "--output",
                str(tmp_path),
                *common,
            ]
        )
        == 2
    )
    assert "speaker-disjoint folds leave no test speaker seen in training" in capsys.readouterr().err
    # speaker-disjoint train/valid/test in the split column: one fold, the split as written
    split = tmp_path / "crema_split.csv"
    assert main(["data", "split", str(manifest), "--valid", "0.2", "--test", "0.2", "-o", str(split)]) == 0
    assert "speaker-disjoint splits: test=6, train=24, valid=6" in capsys.readouterr().out
    assert main(["benchmark", "--tasks", f"{split}:emotion", "--output", str(tmp_path / "o4"), *common]) == 0
    assert (
        "| emotion_crema_split | test accuracy | the manifest's own split column |" in capsys.readouterr().out
    )
