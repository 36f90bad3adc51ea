"""Cross-correlation structure of a Barlow Twins run: untrained vs trained, and over training.

The Barlow Twins objective drives the cross-correlation matrix ``C`` of the two views'
embeddings towards the identity (Zbontar et al. 2021, eq. 1). For one pretraining run this
study draws, on the same utterances and the same two augmentations: the heatmap of ``C``
for the model at initialisation (the run's seed, so exactly its starting weights) and
after training, their on/off-diagonal statistics, and the curves of those statistics (and
of the collapse monitor) logged during training (Brima et al. 2024, §4.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechssl.analysis import (
    diagonal_stats,
    plot_cross_correlation,
    plot_training_curves,
    view_cross_correlation,
)
from speechssl.data import load_manifest
from speechssl.methods.barlow_twins import BarlowTwins
from speechssl.models.checkpoint import find_latest
from speechssl.train import load_checkpoint, load_pretrain_config
from speechssl.train.logging import read_metrics
from speechssl.train.pretrain import build_pretrain_method

CURVES = ("on_diagonal_mean", "off_diagonal_abs_mean", "effective_rank", "embedding_std")


def run_cross_correlation_study(
    run_dir: str | Path, output: str | Path, utterances: int = 512, seed: int = 0, max_dims: int = 64
) -> dict:
    """Write ``cross_correlation.png``, ``statistics_over_training.png``, ``metrics.json`` and
    ``report.md`` for the run in ``run_dir`` into ``output``; return the metrics.

    Args:
        run_dir: a pretraining run folder (its ``config.yaml``, checkpoints and ``metrics.jsonl``).
        output: report folder.
        utterances: how many utterances of the run's pretraining data ``C`` is computed on.
        seed: seed of the utterance sample and of the two views' augmentations.
        max_dims: heatmaps show the first ``max_dims`` dimensions of ``C``.

    Raises:
        FileNotFoundError: no checkpoint in ``run_dir``.
        ValueError: the run's method is not a two-view method.
    """
    run_dir, output = Path(run_dir), Path(output)
    checkpoint = find_latest(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"run folder {run_dir}: no checkpoint (is it a speechssl pretrain run?)")
    config = load_pretrain_config(run_dir / "config.yaml")
    untrained = build_pretrain_method(config)
    if not isinstance(untrained, BarlowTwins):
        raise ValueError(
            f"run {run_dir}: the cross-correlation study needs a two-view method, found {config.method!r}"
        )
    trained = build_pretrain_method(config)
    state = load_checkpoint(checkpoint, trained)

    manifest = load_manifest(config.data)
    rng = np.random.default_rng(seed)
    sample = manifest.select(
        sorted(rng.permutation(len(manifest))[: min(utterances, len(manifest))].tolist())
    )
    matrices = {
        "untrained (initial weights)": view_cross_correlation(untrained, sample, seed),
        f"trained ({state.step} updates)": view_cross_correlation(trained, sample, seed),
    }
    output.mkdir(parents=True, exist_ok=True)
    plot_cross_correlation(matrices, output / "cross_correlation.png", max_dims=max_dims)
    records = read_metrics(run_dir)
    logged = [name for name in CURVES if any(name in record for record in records)]
    if logged:
        plot_training_curves(records, output / "statistics_over_training.png", tuple(logged))
    metrics = {
        "run": str(run_dir),
        "checkpoint": str(checkpoint),
        "utterances": len(sample),
        "statistics": {name: diagonal_stats(c) for name, c in matrices.items()},
        "final_logged": {
            name: next((r[name] for r in reversed(records) if name in r), None) for name in logged
        },
    }
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    lines = [
        "# Cross-correlation of the two views' embeddings",
        "",
        f"Run `{run_dir}`, checkpoint `{checkpoint.name}`, {len(sample)} utterances of its pretraining data, "
        f"the same two augmentations (seed {seed}) for both models.",
        "",
        "| model | mean C_ii | mean abs C_ij (i≠j) |",
        "|---|---|---|",
        *(
            f"| {name} | {s['on_diagonal_mean']:.3f} | {s['off_diagonal_abs_mean']:.3f} |"
            for name, s in metrics["statistics"].items()
        ),
        "",
        "![cross-correlation](cross_correlation.png)",
        "",
    ]
    if logged:
        lines += ["## During training", "", "![statistics over training](statistics_over_training.png)", ""]
    (output / "report.md").write_text("\n".join(lines))
    return metrics


__all__ = ["run_cross_correlation_study"]
