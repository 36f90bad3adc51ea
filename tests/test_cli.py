"""The command line, run in-process: every sub-command once, and its error paths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from speechssl.cli import main, with_flags
from speechssl.upstream import build_upstream


def test_data_list_names_every_native_corpus(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("fsdd", "librispeech", "ravdess", "arabic_speech_commands", "speech_commands", "folder"):
        assert name in out


def test_data_synthetic_manifest_and_validate(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    assert main(["data", "synthetic", str(corpus), "num_utterances=30", "num_speakers=3"]) == 0
    assert main(["data", "manifest", str(corpus / "manifest.csv"), "-o", str(tmp_path / "m.jsonl")]) == 0
    capsys.readouterr()
    assert main(["data", "validate", str(tmp_path / "m.jsonl"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_utterances"] == 30
    assert report["num_speakers"] == 3


def test_data_validate_reports_bad_files_with_nonzero_exit(tmp_path, capsys):
    folder = tmp_path / "audio"
    assert main(["data", "synthetic", str(folder), "num_utterances=5", "num_speakers=2"]) == 0
    (folder / "broken.wav").write_bytes(b"not audio at all")
    capsys.readouterr()
    assert main(["data", "validate", str(folder), "--corpus", "folder"]) == 2
    report = capsys.readouterr().out
    assert "utterances: 5" in report
    assert "1 bad file" in report and "broken.wav" in report


@pytest.mark.parametrize(
    ("corpus", "utterances", "speakers"),
    [
        ("fsdd", 3000, 6),
        ("mini_librispeech", 392, 28),
        ("ravdess", 1440, 24),
        ("arabic_speech_commands", 3600, 30),
    ],
)
def test_data_validate_gives_the_shared_readme_counts(shared_data, capsys, corpus, utterances, speakers):
    assert main(["data", "validate", str(shared_data(corpus)), "--no-decode", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["num_utterances"], report["num_speakers"]) == (utterances, speakers)


def test_pretrain_then_probe(tmp_path, capsys, tiny_pretrain_overrides):
    run = tmp_path / "run"
    overrides = [*tiny_pretrain_overrides, f"data.root={tmp_path / 'corpus'}"]
    assert main(["pretrain", "--method", "barlow_twins", "--run-dir", str(run), *overrides]) == 0
    assert "finished at step 3" in capsys.readouterr().out
    results = tmp_path / "probe"
    args = [
        "probe",
        "--manifest",
        str(tmp_path / "corpus" / "manifest.csv"),
        "--task",
        "gender",
        "--task",
        "word",
    ]
    upstreams = ["--upstream", str(run), "--upstream", "fbank"]
    assert (
        main([*args, *upstreams, "--layer", "best", "--seeds", "2", "--output", str(results), "max_epochs=5"])
        == 0
    )
    out = capsys.readouterr().out
    assert "gender" in out and "fbank" in out
    assert "feature cache: 0 hit(s), 2 miss(es)" in out
    assert main([*args, *upstreams, "--layer", "best", "max_epochs=5"]) == 0
    assert "feature cache: 2 hit(s), 0 miss(es)" in capsys.readouterr().out
    summary = json.loads((results / "summary.json").read_text())
    assert {(r["upstream"], r["task"], r["n"]) for r in summary} == {
        (str(run), "gender", 2), (str(run), "word", 2), ("fbank", "gender", 2), ("fbank", "word", 2)
    }  # fmt: skip
    assert all("clipped" in r and (r["ci_high"] is None or r["ci_high"] <= 1.0) for r in summary)
    # every layer's rows are kept ('best' is chosen from them), so a rerun trains nothing
    layers = build_upstream(str(run)).num_layers + build_upstream("fbank").num_layers
    kept = sorted((results / "runs").rglob("seed_*.json"))
    assert len(kept) == layers * 2 * 2
    stamps = [path.stat().st_mtime_ns for path in kept]
    assert (
        main([*args, *upstreams, "--layer", "best", "--seeds", "2", "--output", str(results), "max_epochs=5"])
        == 0
    )
    assert "feature cache: 0 hit(s), 0 miss(es)" in capsys.readouterr().out
    assert sum(s != path.stat().st_mtime_ns for s, path in zip(stamps, kept, strict=True)) == 8, (
        "best rows rewritten only"
    )
    assert main([*args, "--upstream", "fbank", "head=svm"]) == 2
    assert (
        "head.head: expected one of ['linear', 'mlp', 'projected_linear'], found 'svm'"
        in capsys.readouterr().err
    )

    # a used run directory is refused unless --resume
    assert main(["pretrain", "--method", "barlow_twins", "--run-dir", str(run), *overrides]) == 2
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["pretrain", "--method", "barlow_twins", "--run-dir", "x", "optim.lr=fast"],
            "optim.lr: expected float",
        ),
        (["pretrain", "--method", "barlow_twins", "--run-dir", "x", "optim.lrr=1"], "unknown key optim.lrr"),
        (["pretrain", "--method", "simclr", "--run-dir", "x"], "simclr"),
        (["pretrain", "--method", "barlow_twins", "--run-dir", "x", "lr"], "expected key=value"),
        (["probe", "--upstream", "nope", "--manifest", "missing.csv", "--task", "t"], "missing.csv"),
    ],
)
def test_errors_name_the_option_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_library_option_names_are_shown_as_flags():
    message = "suite mini: corpus folder(s) not found: /x/ravdess (check data_root)"
    assert with_flags(message) == "--suite mini: corpus folder(s) not found: /x/ravdess (check --data-root)"
    assert (
        with_flags("layer: expected an index in [-3, 3), found 3")
        == "--layer: expected an index in [-3, 3), found 3"
    )
    assert with_flags("projectors: expected at least one value, found none").startswith("--projectors: ")
    units = "units: expected exactly one of units and quantizer, found None and None"
    assert (
        with_flags(units) == units
    )  # `units` is an option of many commands: mapped in `speechssl units` only
    assert with_flags(units, "units").startswith("--units: expected")


def test_ablate_errors_name_its_flags(capsys):
    assert main(["ablate", "--losses", "bt,simclr", "--output", "unused"]) == 2
    assert capsys.readouterr().err.startswith("speechssl: error: --losses: expected names from ")


def test_unchanged_messages_keep_their_words():
    for unchanged in (
        "head.head: expected one of ['linear', 'mlp', 'projected_linear']",
        "unknown task 'x'",
        "layers: 3 tasks",
    ):
        assert with_flags(unchanged) == unchanged


def test_quickstart_writes_its_report(tmp_path, capsys, tiny_pretrain_overrides):
    keep = [o for o in tiny_pretrain_overrides if not o.startswith(("data.synthetic", "train.max_steps"))]
    overrides = [*keep, "data.synthetic.num_utterances=80", "data.synthetic.num_speakers=4"]
    assert main(["quickstart", "--output", str(tmp_path), "--steps", "4", *overrides]) == 0
    out = capsys.readouterr().out
    for name in ("barlow_twins", "random_init", "log_mel", "speaker", "contour", "chance"):
        assert name in out
    for name in ("loss_curve.png", "cross_correlation.png", "metrics.json", "report.md"):
        assert (tmp_path / name).stat().st_size > 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pretraining"]["steps"] == 4
    assert len(metrics["probes"]) == 3 * 4 * 3  # upstreams x tasks x seeds
    assert set(metrics["cross_correlation"]) == {"before", "after"}


def test_benchmark_command_writes_the_report(shared_data, tmp_path, capsys):
    data_root = shared_data("fsdd").parent
    argv = ["benchmark", "--upstreams", "fbank,mfcc", "--tasks", "keyword_fsdd", "--seeds", "2"]
    argv += [
        "--data-root",
        str(data_root),
        "--output",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main([*argv, "max_epochs=10"]) == 0
    out = capsys.readouterr().out
    assert (
        "| keyword_fsdd |" in out and "feature cache: 2 hit(s), 2 miss(es)" in out
    )  # 2 hits: the ceiling's log-mel
    assert main([*argv, "head=svm"]) == 2
    assert (
        "head.head: expected one of ['linear', 'mlp', 'projected_linear'], found 'svm'"
        in capsys.readouterr().err
    )
    assert main([*argv[:4], "speaker_timit", *argv[5:]]) == 2
    assert "unknown task 'speaker_timit'" in capsys.readouterr().err
    assert main([*argv, "asr.hiden=64"]) == 2
    assert "unknown key asr.hiden" in capsys.readouterr().err
    suite = ["benchmark", "--upstreams", "fbank", "--suite", "mini", "--data-root", str(tmp_path)]
    assert main(suite) == 2
    assert "--suite mini: corpus folder(s) not found" in capsys.readouterr().err


def test_augment_writes_two_views_and_their_figure(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    audio = tmp_path / "tone.wav"
    sf.write(audio, 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000).astype(np.float32), 16000)
    out = tmp_path / "views"
    assert (
        main(["augment", "--audio", str(audio), "--output", str(out), "reverb.p=1", "crop_seconds=0.5"]) == 0
    )
    for name in ("original.wav", "view_1.wav", "view_2.wav", "views.png"):
        assert (out / name).stat().st_size > 0
    first, rate = sf.read(out / "view_1.wav")
    assert rate == 16000 and len(first) == 8000, "the 0.5 s crop"
    assert not np.allclose(first, sf.read(out / "view_2.wav")[0]), "two independent views"
    assert main(["augment", "--audio", str(audio), "--output", str(out), "reverb.q=1"]) == 2
    assert "unknown key view.reverb.q" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["--version"], ["data", "list"], ["data", "manifest", "FSDD", "-o", "OUT"]],
    ids=["help", "version", "data-list", "data-manifest"],
)
def test_light_commands_never_import_torch_or_scipy(argv, tmp_path):
    """`speechssl --help` and the `data` listing/manifest commands start without torch or scipy
    (their import alone costs seconds); heavy modules are imported where they are used."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    soundfile.write(folder / "3_jackson_0.wav", np.zeros(4000, dtype=np.float32), 8000)
    argv = [str(folder) if a == "FSDD" else str(tmp_path / "m.csv") if a == "OUT" else a for a in argv]
    script = (
        "import sys\n"
        "from speechssl.cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "assert code == 0, code\n"
        "heavy = sorted(m for m in ('torch', 'scipy') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_overrides_are_accepted_on_both_sides_of_options(capsys):
    from speechssl.cli import _parse

    args = _parse(
        ["pretrain", "optim.lr=1e-3", "--run-dir", "x", "train.max_steps=2", "--method", "hubert", "a.b=1"]
    )
    assert (args.run_dir, args.method) == ("x", "hubert")
    assert args.overrides == ["optim.lr=1e-3", "train.max_steps=2", "a.b=1"]
    with pytest.raises(SystemExit):
        _parse(["pretrain", "optim.lr=1e-3", "--run-dir", "x", "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
