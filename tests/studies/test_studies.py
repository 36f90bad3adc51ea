"""The Barlow Twins study commands on tiny data: ablation grid, pretraining data, cross-correlation
and disentanglement reports."""

from __future__ import annotations

import json

import pytest

from speechssl.cli import main
from speechssl.data import SyntheticConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.training import HeadTrainingConfig
from speechssl.studies.ablation import ablation_variants, parse_projector, run_ablation
from speechssl.studies.cross_correlation import run_cross_correlation_study
from speechssl.studies.disentanglement import FACTORS, run_disentanglement_study
from speechssl.studies.pretraining_data import run_pretraining_data_study


def test_ablation_grid_names_and_overrides():
    variants = ablation_variants(["bt", "vicreg"], [0.005, 0.05], ["64x32", "128x128x64"])
    assert sorted(variants) == [
        "bt_l0.005_p128x128x64", "bt_l0.005_p64x32", "bt_l0.05_p128x128x64", "bt_l0.05_p64x32",
        "vicreg_p128x128x64", "vicreg_p64x32",
    ]  # fmt: skip
    assert variants["vicreg_p64x32"] == {"loss": "vicreg", "projector": [64, 32]}
    assert variants["bt_l0.05_p64x32"]["lambda_"] == 0.05  # the float itself, never a key=value string
    assert parse_projector("512X256") == [512, 256]
    hubert = ablation_variants(["hubert", "hubert_all_frames"], [0.005], ["64x32"])
    assert hubert == {"hubert": {"masked_weight": 1.0}, "hubert_all_frames": {"masked_weight": 0.5}}
    with pytest.raises(
        ValueError, match=r"^losses: expected variants of one method, found variants of barlow_twins, hubert"
    ):
        ablation_variants(["bt", "hubert"], [0.005], ["64"])
    with pytest.raises(ValueError, match=r"^losses: expected names from .* found \['simclr'\]"):
        ablation_variants(["simclr"], [0.005], ["64"])
    with pytest.raises(ValueError, match=r"^projectors: expected widths like 512x512, found 'wide'"):
        ablation_variants(["bt"], [0.005], ["wide"])


def test_ablation_pretrains_each_variant_and_reports_them(
    shared_data, tmp_path, tiny_tasks, tiny_pretrain_overrides, monkeypatch, capsys
):
    monkeypatch.setattr("speechssl.progress.LOG_INTERVAL_S", 0.0)  # a progress line on every update
    data_root = shared_data("fsdd").parent
    overrides = [*tiny_pretrain_overrides, f"data.root={tmp_path / 'corpus'}"]
    plan = EvaluationPlan(
        ["keyword_fsdd"], [0, 1], FeatureCache(tmp_path / "cache"), data_root, HeadTrainingConfig(max_epochs=2),
        baselines=["fbank"],
    )  # fmt: skip
    result = run_ablation(None, ["bt", "vicreg"], [0.005], ["32x32"], tmp_path / "ablate", plan, overrides)
    assert set(result.checkpoints) == {"bt_l0.005_p32x32", "vicreg_p32x32"}
    report = result.report.read_text()
    assert "| keyword_fsdd |" in report and "vicreg_p32x32" in report and "bt_l0.005_p32x32" in report
    saved = json.loads((tmp_path / "ablate" / "variants.json").read_text())
    assert saved["vicreg_p32x32"]["config"]["objective"]["loss"] == "vicreg"
    assert len(result.rows) == 3 * 2  # (fbank + 2 variants) x 2 seeds
    assert "| vicreg_p32x32 | pretrained once |" in report and "| fbank | no learned weights |" in report
    err = capsys.readouterr().err
    assert "study: pretraining variants: 2/2 variants (100%)" in err and "evaluation: 6/6 seeds" in err
    # the runs' last training values: Barlow Twins logs its diagonal, VICReg its variance term
    training = report.split("## Pretraining: last logged training values")[1].split("## ")[0]
    bt_row = next(line for line in training.splitlines() if line.startswith("| bt_l0.005_p32x32 | 3 |"))
    assert any(line.startswith("| vicreg_p32x32 | 3 |") for line in training.splitlines())
    header = training.strip().splitlines()[0].split(" | ")
    assert "on_diagonal_mean" in header and "effective_rank" in header
    column = header.index("on_diagonal_mean")
    assert bt_row.split(" | ")[column] != "" and float(bt_row.split(" | ")[column]) <= 1.0


def test_a_hubert_grid_through_speechssl_ablate(
    shared_data, tmp_path, tiny_tasks, tiny_hubert_overrides, capsys
):
    data_root = shared_data("fsdd").parent
    output = tmp_path / "ablate"
    argv = [
        "ablate", "--config", "hubert_tiny", "--losses", "hubert,hubert_all_frames", "--tasks", "keyword_fsdd",
        "--seeds", "1", "--baselines", "", "--data-root", str(data_root), "--cache-dir", str(tmp_path / "cache"),
        "--head", "max_epochs=2", "--output", str(output), *tiny_hubert_overrides, f"data.root={tmp_path / 'corpus'}",
    ]  # fmt: skip
    assert main(argv) == 0
    assert "| keyword_fsdd |" in capsys.readouterr().out
    saved = json.loads((output / "variants.json").read_text())
    assert {name: saved[name]["config"]["objective"]["masked_weight"] for name in saved} == {
        "hubert": 1.0, "hubert_all_frames": 0.5,
    }  # fmt: skip
    for name in saved:  # each run fitted its own MFCC k-means tokenizer before training
        assert (output / "runs" / name / "units" / "tokenizer.yaml").is_file()
        assert saved[name]["config"]["objective"]["units"] == ""


def test_pretraining_data_study_trains_on_each_corpus_and_their_union(
    shared_data, tmp_path, tiny_tasks, tiny_pretrain_overrides
):
    data_root = shared_data("fsdd").parent
    overrides = [o for o in tiny_pretrain_overrides if not o.startswith("data.synthetic")]
    plan = EvaluationPlan(
        ["keyword_fsdd"], [0], FeatureCache(tmp_path / "cache"), data_root, HeadTrainingConfig(max_epochs=2)
    )
    result = run_pretraining_data_study(
        "barlow_twins_tiny", ["fsdd", "synthetic", "union"], tmp_path / "study", plan, overrides
    )
    assert set(result.checkpoints) == {"fsdd", "synthetic", "union"}
    union = (tmp_path / "study" / "manifests" / "union.csv").read_text().splitlines()
    fsdd = (tmp_path / "study" / "manifests" / "fsdd.csv").read_text().splitlines()
    synthetic = (tmp_path / "study" / "manifests" / "synthetic.csv").read_text().splitlines()
    assert len(union) == len(fsdd) + len(synthetic) - 1  # one header each
    report = result.report.read_text()
    assert "| keyword_fsdd |" in report
    corpora = report.split("## Pretraining data")[1].split("## ")[0]
    sizes = {line.strip("| ").split(" | ")[0]: line.strip("| ").split(" | ")[1:4] for line in corpora.splitlines()
             if line.startswith(("| fsdd |", "| synthetic |", "| union |"))}  # fmt: skip
    assert int(sizes["union"][0]) == int(sizes["fsdd"][0]) + int(sizes["synthetic"][0])
    assert int(sizes["fsdd"][1]) == 6  # FSDD's speakers
    assert float(sizes["union"][2]) == pytest.approx(
        float(sizes["fsdd"][2]) + float(sizes["synthetic"][2]), abs=0.011
    )


def test_cross_correlation_study_of_a_run(tiny_run, tmp_path):
    metrics = run_cross_correlation_study(tiny_run.checkpoint.parent, tmp_path / "xcorr", utterances=16)
    assert metrics["utterances"] == 16
    assert len(metrics["statistics"]) == 2
    for name in ("cross_correlation.png", "statistics_over_training.png", "report.md", "metrics.json"):
        assert (tmp_path / "xcorr" / name).stat().st_size > 0
    assert "mean C_ii" in (tmp_path / "xcorr" / "report.md").read_text()
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_cross_correlation_study(tmp_path, tmp_path / "none")


def test_disentanglement_study_scores_every_layer(tmp_path):
    # the faster estimators; the reference's (the defaults) are tested in tests/analysis
    results = run_disentanglement_study(
        ["fbank", "random:tiny"], tmp_path / "dis", FeatureCache(tmp_path / "cache"), seeds=[0],
        synthetic=SyntheticConfig(num_utterances=160, num_speakers=4),
        head=HeadTrainingConfig(max_epochs=5), dci_estimator="random_forest", sap_estimator="nearest_mean",
    )  # fmt: skip
    assert set(results) == {"fbank", "random:tiny"}
    assert len(results["random:tiny"]["layers"]) == 3 and len(results["fbank"]["layers"]) == 1
    scores = results["fbank"]["layers"][0]
    assert 0.0 <= scores["mig"] <= 1.0 and scores["dci_informativeness"] > 0.3
    assert set(results["fbank"]["probes"]) == set(FACTORS)
    for name in ("report.md", "layer_curves.png", "map_fbank.png", "map_random_tiny.png"):
        assert (tmp_path / "dis" / name).stat().st_size > 0
    assert "from `random_forest`, SAP from `nearest_mean`" in (tmp_path / "dis" / "report.md").read_text()


def test_study_commands_check_their_options(tmp_path, capsys):
    assert (
        main(
            [
                "ablate",
                "--losses",
                "bt",
                "--lambdas",
                "big",
                "--tasks",
                "keyword_fsdd",
                "--output",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "--lambdas: expected comma-separated numbers, found 'big'" in capsys.readouterr().err
    assert (
        main(["study", "cross-correlation", "--run-dir", str(tmp_path), "--output", str(tmp_path / "x")]) == 2
    )
    assert "no checkpoint" in capsys.readouterr().err
