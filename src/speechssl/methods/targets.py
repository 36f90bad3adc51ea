"""The label pipeline of pretraining: a method's frozen tokenizer, made before training.

HuBERT iterates (Hsu et al. 2021, §II-B): iteration 1 learns to predict k-means units of
MFCC frames; iteration ``n + 1`` predicts k-means units of a hidden layer of the iteration-``n``
model. Discrete BERT reads units of a trained quantizer (Baevski et al. 2019: vq-wav2vec).
A method takes part by having a ``units`` option (the tokenizer directory) and a
``targets`` option (:class:`~speechssl.models.units.UnitTargets`); when ``units`` is empty,
:func:`prepare_units` (the method's :meth:`~speechssl.methods.base.PretextMethod.prepare` hook,
run by :func:`speechssl.train.pretrain.pretrain`) makes the tokenizer from ``targets`` on the
pretraining corpus, saves it in ``RUN_DIR/units`` and points ``objective.units`` at it. A
resumed run finds it there and reuses it, so its targets never change.

Frame rates: k-means units are pooled to the encoder's frame rate (MFCC's 10 ms frames 4x to
the fbank encoder's 40 ms, 2x to the CNN's 20 ms); a teacher whose frames cannot be pooled
to the student's is an error. Methods check the rate again when built
(:func:`speechssl.methods.hubert.check_frame_rates`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from speechssl import distributed
from speechssl.data.audio import BadFileSummary
from speechssl.data.config import DataConfig, load_manifest
from speechssl.data.manifest import Manifest
from speechssl.features.filterbank import hop_samples
from speechssl.methods.tokenizers import tokenizer_from_run
from speechssl.models.checkpoint import load_encoder, resolve_checkpoint
from speechssl.models.encoder import EncoderConfig, UnitFeatureConfig, build_frontend
from speechssl.models.kmeans import KMeansConfig, fit_units
from speechssl.models.units import (
    TOKENIZER_CONFIG,
    UnitFeatures,
    UnitTargets,
    UnitTokenizer,
    save_unit_tokenizer,
)
from speechssl.storage import publish_folder, staging_folder

UNITS_DIR = "units"
FIT_REPORT = "fit_report.json"

C = TypeVar("C")


def unit_targets(config: Any) -> UnitTargets | None:
    """The ``targets`` of a method config whose ``units`` option is empty; None when nothing is to be made."""
    if getattr(config, "units", None) != "" or not isinstance(getattr(config, "targets", None), UnitTargets):
        return None
    return config.targets


def pooling_factor(student_rate: int, native_rate: int, source: str) -> int:
    """Frames of ``native_rate`` samples averaged into one frame of the student's ``student_rate``."""
    if student_rate % native_rate:
        raise ValueError(
            f"targets: expected {source}'s frames ({native_rate} samples) to pool into the encoder's "
            f"({student_rate} samples), found a ratio of {student_rate / native_rate:g}; use a teacher "
            "with the student's frame rate"
        )
    return student_rate // native_rate


def target_features(targets: UnitTargets, student_rate: int, sample_rate: int) -> UnitFeatures:
    """The frames k-means clusters: MFCC (+Δ, ΔΔ) without a teacher, else the teacher's ``layer``.

    Args:
        targets: what the units are made of.
        student_rate: samples per frame of the encoder being pretrained.
        sample_rate: the encoder's ``sample_rate``; the MFCC are computed at it and a teacher
            must read audio at it.
    """
    if not targets.teacher:
        pool = pooling_factor(student_rate, hop_samples(sample_rate), "MFCC")
        return UnitFeatures(UnitFeatureConfig(source="mfcc", pool=pool, sample_rate=sample_rate))
    teacher = load_encoder(resolve_checkpoint(targets.teacher))
    if teacher.sample_rate != sample_rate:
        raise ValueError(
            f"targets.teacher: expected an encoder at encoder.sample_rate = {sample_rate} Hz, found "
            f"{teacher.sample_rate} Hz in {targets.teacher}"
        )
    pool = pooling_factor(student_rate, teacher.downsample_rate, f"teacher {targets.teacher}")
    features = UnitFeatureConfig(source="encoder", layer=targets.layer, pool=pool, encoder=teacher.config)
    return UnitFeatures(features, teacher)


def make_tokenizer(
    targets: UnitTargets, encoder: EncoderConfig, data: DataConfig
) -> tuple[UnitTokenizer, dict[str, Any]]:
    """The tokenizer ``targets`` describes, fitted on the pretraining corpus ``data`` at ``encoder``'s frame rate, and a report."""
    if targets.kind == "quantizer":
        tokenizer = tokenizer_from_run(targets.teacher)
        return tokenizer, {"kind": "quantizer", "teacher": targets.teacher, "num_units": tokenizer.num_units}
    student_rate = build_frontend(encoder).downsample_rate
    features = target_features(targets, student_rate, encoder.sample_rate)
    kmeans = KMeansConfig(k=targets.num_units, max_frames=targets.max_frames, seed=targets.seed)
    manifest = fitting_manifest(data)
    tokenizer, report = fit_units(features, manifest, kmeans, max_batch_seconds=data.max_batch_seconds)
    return tokenizer, {"kind": "kmeans", "targets": dataclasses.asdict(targets), **report}


def fitting_manifest(data: DataConfig) -> Manifest:
    """The rows of ``data`` the units are fitted on: with ``data.skip_bad``, without the files
    whose header is bad (pretraining skips them too and lists them in ``bad_files.json``);
    otherwise every row, stopping at a bad file."""
    return load_manifest(data, bad_files=BadFileSummary() if data.skip_bad else None)


def prepare_units(config: C, encoder: EncoderConfig, data: DataConfig, run_dir: str | Path) -> C:
    """The method config ``config`` with ``units`` pointing at a tokenizer, made first if the run has none.

    The main process fits and writes ``run_dir/units`` atomically (with ``fit_report.json``);
    other ranks wait at a barrier. Configs that need no units, or that name a tokenizer
    already, come back unchanged.

    Args:
        config: a method config with ``units`` and ``targets`` options (HuBERT, Discrete BERT).
        encoder: the run's encoder config (units are pooled to its frame rate).
        data: the pretraining corpus the k-means is fitted on.
        run_dir: the run directory; the tokenizer goes to ``run_dir/units``.
    """
    targets = unit_targets(config)
    if targets is None:
        return config
    directory = Path(run_dir) / UNITS_DIR
    if distributed.is_main_process() and not (directory / TOKENIZER_CONFIG).is_file():
        tokenizer, report = make_tokenizer(targets, encoder, data)
        with staging_folder(directory) as staging:
            save_unit_tokenizer(tokenizer, staging)
            (staging / FIT_REPORT).write_text(json.dumps(report, indent=2, default=str))
            publish_folder(staging, directory)
    distributed.barrier()
    return dataclasses.replace(config, units=str(directory))


__all__ = ["prepare_units", "target_features", "unit_targets"]
