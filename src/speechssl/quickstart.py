"""``speechssl quickstart``: the whole pipeline on an embedded corpus, in minutes on a CPU.

1. generate the synthetic source–filter corpus (no download);
2. pretrain a small encoder with Barlow Twins on its train split;
3. linear-probe the trained encoder, the same architecture with random weights, and log-mel
   features on the corpus's generative factors (speaker, gender, word, pitch contour): a
   linear head on SUPERB's learnt weighted sum of layers, over three seeds;
4. write a report folder: loss curves, the two views' cross-correlation matrix before and
   after training, ``metrics.json`` and ``report.md``.

Re-running with the same output folder reuses the corpus and continues (or reuses) the run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechssl.analysis import (
    diagonal_stats,
    plot_cross_correlation,
    plot_training_curves,
    view_cross_correlation,
)
from speechssl.config import to_dict
from speechssl.data import generate_synthetic_corpus
from speechssl.downstream.cache import FeatureCache
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.report import format_accuracy_matrix
from speechssl.downstream.runner import probe_upstreams
from speechssl.train import load_pretrain_config, pretrain
from speechssl.train.checkpoint import load_checkpoint
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import build_pretrain_method

QUICKSTART_CONFIG = "barlow_twins_quickstart"
TASKS = ("speaker", "gender", "word", "contour")
PROBE_SEEDS = 3
CROSS_CORRELATION_UTTERANCES = 512


def run_quickstart(output: Path, steps: int | None = None, overrides: Sequence[str] = ()) -> dict:
    """Run the quickstart into ``output`` and return the metrics written to ``metrics.json``."""
    output.mkdir(parents=True, exist_ok=True)
    run_dir = output / "run"
    settings = [f"data.root={output / 'synthetic'}", *overrides]
    if steps is not None:
        settings.append(f"train.max_steps={steps}")
    config = load_pretrain_config(QUICKSTART_CONFIG, settings)

    # 1. Corpus: every split, for probing; pretraining reads the train split only.
    corpus = generate_synthetic_corpus(config.data.synthetic, Path(config.data.root))
    print(f"[1/4] synthetic corpus: {len(corpus)} utterances in {config.data.root}")

    # 2. Barlow Twins pretraining, with the views' cross-correlation before and after
    # (pretrain() initialises the same weights from train.seed as this copy).
    method = build_pretrain_method(config)
    rng = np.random.default_rng(config.train.seed)
    sample = corpus.select(sorted(rng.permutation(len(corpus))[:CROSS_CORRELATION_UTTERANCES].tolist()))
    before = view_cross_correlation(method, sample)
    print(f"[2/4] pretraining {config.method} for {config.train.max_steps} steps in {run_dir}")
    result = pretrain(config, run_dir, resume=True)
    load_checkpoint(result.checkpoint, method)
    after = view_cross_correlation(method, sample)

    # 3. Linear probes of the trained encoder against random weights and log-mel features.
    print("[3/4] probing: trained encoder vs random init vs log-mel")
    upstreams = {
        "barlow_twins": str(result.checkpoint),
        "random_init": f"random:{result.checkpoint / 'encoder.yaml'}",
        "log_mel": "fbank",
    }
    plan = EvaluationPlan(TASKS, range(PROBE_SEEDS), FeatureCache(output / "features"))
    rows = probe_upstreams(list(upstreams.values()), corpus, plan)
    names = {spec: name for name, spec in upstreams.items()}
    for row in rows:
        row["upstream"] = names[row["upstream"]]

    # 4. Report folder.
    records = read_metrics(run_dir)
    plot_training_curves(records, output / "loss_curve.png", ("loss", "invariance", "redundancy"))
    plot_cross_correlation(
        {"before training": before, "after training": after}, output / "cross_correlation.png", max_dims=64
    )
    table = format_accuracy_matrix(rows, list(upstreams), list(TASKS))
    metrics = {
        "config": to_dict(config),
        "pretraining": {
            "steps": result.step,
            "final_loss": result.loss,
            "checkpoint": str(result.checkpoint),
            "elapsed_s": records[-1]["elapsed_s"],
            "audio_seconds_per_second": float(np.mean([r["audio_seconds_per_second"] for r in records])),
        },
        "cross_correlation": {"before": diagonal_stats(before), "after": diagonal_stats(after)},
        "probes": rows,
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (output / "report.md").write_text(_report_markdown(metrics, table))
    print(f"[4/4] report in {output}\n")
    print(table)
    return metrics


def _report_markdown(metrics: dict, table: str) -> str:
    before, after = metrics["cross_correlation"]["before"], metrics["cross_correlation"]["after"]
    training = metrics["pretraining"]
    return "\n".join(
        [
            "# speechssl quickstart",
            "",
            f"Barlow Twins, {training['steps']} steps ({training['elapsed_s']:.0f} s, "
            f"{training['audio_seconds_per_second']:.0f} audio-s/s), final loss {training['final_loss']:.3f}.",
            "",
            f"## Linear probe accuracy on the synthetic corpus (test split; weighted sum of layers; "
            f"mean of {PROBE_SEEDS} seeds)",
            "",
            "```",
            table,
            "```",
            "",
            "## Cross-correlation of the two views' projections",
            "",
            "| | mean C_ii | mean abs C_ij (i≠j) |",
            "|---|---|---|",
            f"| before training | {before['on_diagonal_mean']:.3f} | {before['off_diagonal_abs_mean']:.3f} |",
            f"| after training | {after['on_diagonal_mean']:.3f} | {after['off_diagonal_abs_mean']:.3f} |",
            "",
            "![cross-correlation](cross_correlation.png)",
            "",
            "![loss](loss_curve.png)",
            "",
        ]
    )
