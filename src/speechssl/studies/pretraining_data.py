"""Which data to pretrain on: each real corpus, the synthetic corpus and their union.

Brima et al. (2024, §4) pretrain Barlow Twins on several speech corpora and find that data
quality can matter more than quantity. ``speechssl study pretraining-data`` pretrains one
model per corpus (the same config and number of updates, so the comparison is at equal
compute) on its ``train`` split, plus one on the union of all of them, and evaluates each
with the downstream harness beside the baselines; the report lists each corpus's hours.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from speechssl.data import Manifest, load_corpus
from speechssl.data.synthetic import SyntheticConfig, generate_synthetic_corpus
from speechssl.downstream.plan import EvaluationPlan
from speechssl.downstream.report import ReportTable
from speechssl.studies.grid import GridResult, run_pretraining_grid
from speechssl.train import load_pretrain_config

# name -> (loader, folder under the data root)
CORPORA = {
    "librispeech": ("librispeech", "mini_librispeech/LibriSpeech"),
    "ravdess": ("ravdess", "ravdess"),
    "arabic_speech_commands": ("arabic_speech_commands", "arabic_speech_commands"),
    "fsdd": ("fsdd", "fsdd"),
}
SYNTHETIC = "synthetic"
UNION = "union"


def _train_rows(manifest: Manifest) -> Manifest:
    return manifest.filter(split="train")


def corpus_manifests(corpora: Sequence[str], data_root: str | Path, output: Path) -> dict[str, Manifest]:
    """The ``train`` rows of each named corpus (the synthetic one generated under ``output``)."""
    manifests = {}
    for name in corpora:
        if name == SYNTHETIC:
            manifests[name] = _train_rows(generate_synthetic_corpus(SyntheticConfig(), output / SYNTHETIC))
        elif name in CORPORA:
            loader, folder = CORPORA[name]
            manifests[name] = _train_rows(load_corpus(loader, Path(data_root) / folder))
        else:
            raise ValueError(f"corpora: expected names from {[*CORPORA, SYNTHETIC, UNION]}, found {name!r}")
    return manifests


def union_manifest(manifests: dict[str, Manifest]) -> Manifest:
    """Every row of ``manifests``: ids and speakers prefixed by the corpus name so that they stay
    unique, labels dropped (corpora label different things; pretraining reads none)."""
    return Manifest(
        dataclasses.replace(row, id=f"{name}/{row.id}", speaker=f"{name}/{row.speaker}", labels={})
        for name, manifest in manifests.items()
        for row in manifest
    )


def run_pretraining_data_study(
    base_config: str | Path | None,
    corpora: Sequence[str],
    output: str | Path,
    plan: EvaluationPlan,
    overrides: Sequence[str] = (),
) -> GridResult:
    """Pretrain on each corpus of ``corpora`` (``union`` = all the others together, read from
    ``plan.data_root``) and evaluate each model with ``plan``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    singles = [name for name in corpora if name != UNION]
    manifests = corpus_manifests(singles, plan.data_root, output)
    if UNION in corpora:
        if len(manifests) < 2:
            raise ValueError(f"corpora: 'union' needs at least two other corpora, found {singles}")
        manifests[UNION] = union_manifest(manifests)
    base = load_pretrain_config(base_config, overrides)
    variants = {}
    for name, manifest in manifests.items():
        path = output / "manifests" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest.save(path)
        data = dataclasses.replace(base.data, corpus="manifest", root=str(path.resolve()), split="train")
        variants[name] = dataclasses.replace(base, data=data)
    table = corpora_table(manifests)
    print("\n".join(table.markdown()))
    return run_pretraining_grid(variants, output, plan, context=[table])


def corpora_table(manifests: dict[str, Manifest]) -> ReportTable:
    """Size of each pretraining set: utterances, speakers and hours (the "quality vs size" axis)."""
    return ReportTable(
        "Pretraining data (train splits; every model gets the same number of updates)",
        ["corpus", "utterances", "speakers", "hours"],
        [
            [
                name,
                str(len(manifest)),
                str(len(set(manifest.column("speaker")))),
                f"{sum(row.duration for row in manifest) / 3600:.2f}",
            ]
            for name, manifest in manifests.items()
        ],
    )


__all__ = ["CORPORA", "corpora_table", "corpus_manifests", "run_pretraining_data_study", "union_manifest"]
