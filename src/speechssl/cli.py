"""The ``speechssl`` command line.

Sub-commands parse their arguments and call library functions; nothing below this
module ever sees ``argparse``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import speechssl


def _add_data_parser(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="list corpora, build manifests, validate data")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    data_sub.add_parser("list", help="list the corpora speechssl reads natively")

    manifest = data_sub.add_parser("manifest", help="build a manifest (CSV or JSONL) from a corpus folder")
    manifest.add_argument(
        "root", help="corpus folder in its native layout, or a lhotse CutSet (cuts.jsonl.gz)"
    )
    which = manifest.add_mutually_exclusive_group()
    which.add_argument("--corpus", help="corpus name (default: detected from the folder layout)")
    which.add_argument(
        "--pattern",
        help="take the speaker and labels from each file's path: a named layout (crema-d, tess, savee, "
        "emodb, speech-commands), a format like '{speaker}_{sentence}_{emotion}_{}' or a regex with named groups",
    )
    manifest.add_argument("-o", "--output", required=True, help="manifest file to write (.csv or .jsonl)")

    split = data_sub.add_parser(
        "split",
        help="re-split a manifest speaker-disjointly: train/valid/test, or k folds in a 'fold' column",
    )
    split.add_argument("manifest", help="manifest file (.csv or .jsonl)")
    split.add_argument("-o", "--output", required=True, help="manifest file to write (.csv or .jsonl)")
    split.add_argument(
        "--folds", type=int, help="k speaker-disjoint folds (fold k tests, k+1 validates); default: one split"
    )
    split.add_argument("--valid", type=float, default=0.1, help="share of speakers in valid (no --folds)")
    split.add_argument("--test", type=float, default=0.2, help="share of speakers in test (no --folds)")
    split.add_argument("--group", default="speaker", help="column whose values never span two splits")
    split.add_argument("--stratify", help="a column constant within each group to balance (e.g. gender)")
    split.add_argument("--seed", type=int, default=0, help="seed of the group order")

    validate = data_sub.add_parser(
        "validate", help="report counts, durations, label sets and bad files of a corpus folder or manifest"
    )
    validate.add_argument("path", help="corpus folder or manifest file")
    validate.add_argument("--corpus", help="corpus name (default: detected from the folder layout)")
    validate.add_argument(
        "--no-decode", action="store_true", help="read headers only; do not decode every file"
    )
    validate.add_argument("--json", action="store_true", help="print the report as JSON")

    shard = data_sub.add_parser(
        "shard", help="write a manifest's audio into WebDataset tar shards and an index"
    )
    shard.add_argument("manifest", help="manifest file (.csv or .jsonl)")
    shard.add_argument("-o", "--output", required=True, help="folder for the shards and index.json")
    shard.add_argument("--shard-size", default="256MB", help="target bytes per shard (e.g. 256MB, 1GB)")

    pair = data_sub.add_parser(
        "pair-digits",
        help="pair FSDD utterances with handwritten 8x8 digit images (speaker- and image-disjoint splits)",
    )
    pair.add_argument("root", help="the FSDD folder")
    pair.add_argument(
        "-o", "--output", required=True, help="manifest file to write; images go to images/ beside it"
    )
    pair.add_argument(
        "--seed", type=int, default=0, help="seed of the speaker and image splits and the pairs"
    )

    synthetic = data_sub.add_parser("synthetic", help="generate the synthetic source-filter corpus")
    synthetic.add_argument("output", help="folder for the WAVs and manifest.csv")
    synthetic.add_argument("overrides", nargs="*", help="SyntheticConfig key=value overrides")


def _add_pretrain_parser(sub: argparse._SubParsersAction) -> None:
    pretrain = sub.add_parser("pretrain", help="self-supervised pretraining of an encoder")
    pretrain.add_argument("--method", help="pretext method (default: the config file's)")
    pretrain.add_argument("--config", help="YAML config (default: the method's tiny config)")
    pretrain.add_argument("--run-dir", required=True, help="folder for checkpoints and logs")
    pretrain.add_argument(
        "--resume", action="store_true", help="continue from the run folder's latest checkpoint"
    )
    pretrain.add_argument(
        "--iteration",
        type=int,
        help="HuBERT iteration: 1 = k-means units of MFCC, 2+ = of a layer of --teacher (objective.targets.iteration)",
    )
    pretrain.add_argument(
        "--teacher", help="the previous iteration's run or checkpoint (objective.targets.teacher)"
    )
    pretrain.add_argument(
        "--init-from",
        help="start from the weights of this run or checkpoint, e.g. an imported model (train.init_from)",
    )
    pretrain.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. optim.lr=1e-3 data.root=DIR"
    )


def _add_interop_parsers(sub: argparse._SubParsersAction) -> None:
    imported = sub.add_parser(
        "import", help="convert a published model into a speechssl run (upstream, teacher, --init-from)"
    )
    imported.add_argument(
        "source",
        help="'hf:<transformers model directory>' or a fairseq wav2vec 2.0 / HuBERT checkpoint '<file>.pt'",
    )
    imported.add_argument("--run-dir", required=True, help="new run folder to write the checkpoint to")

    export = sub.add_parser(
        "export", help="write a run's encoder in a format other toolkits load (dynamic batch and length)"
    )
    export.add_argument("run", help="run folder (its latest checkpoint) or checkpoint folder")
    export.add_argument(
        "--format",
        required=True,
        help="'hf' (a transformers model directory), 'onnx' (needs speechssl[onnx]) "
        "or 'torch-export' (a .pt2 program)",
    )
    export.add_argument("--output", required=True, help="folder (hf) or file (onnx, torch-export) to write")


def _add_probe_parser(sub: argparse._SubParsersAction) -> None:
    probe = sub.add_parser(
        "probe", help="classify label columns of a manifest from frozen features, over several seeds"
    )
    probe.add_argument(
        "--upstream",
        action="append",
        required=True,
        help="checkpoint or run folder, 'fbank', 'mfcc', 'random:<preset>' or 'hf:<local model directory>' (repeatable)",
    )
    source = probe.add_mutually_exclusive_group(required=True)
    source.add_argument("--corpus", help="corpus folder in its native layout")
    source.add_argument("--manifest", help="manifest file (.csv or .jsonl)")
    probe.add_argument("--corpus-name", help="corpus name (default: detected from the folder layout)")
    probe.add_argument("--task", action="append", required=True, help="label column to predict (repeatable)")
    probe.add_argument(
        "--layer",
        default="weighted",
        help="'weighted' (SUPERB's learnt layer mix), 'last', 'all', 'best' (chosen on valid) or an index",
    )
    probe.add_argument("--max-batch-seconds", type=float, default=60.0)
    probe.add_argument(
        "--output", help="folder for one JSON per (upstream, task, layer, seed) and summary.json"
    )
    _add_evaluation_options(probe, seeds=1, tasks=False, head_positional=True)


def _add_augment_parser(sub: argparse._SubParsersAction) -> None:
    augment = sub.add_parser(
        "augment", help="write two augmented views of an utterance as WAVs and a waveform/spectrogram figure"
    )
    augment.add_argument("--audio", required=True, help="an audio file")
    augment.add_argument("--output", default="outputs/views", help="folder for the WAVs and views.png")
    augment.add_argument(
        "--config", help="pretraining YAML whose objective.view to use (default: the view defaults)"
    )
    augment.add_argument("--seed", type=int, default=0)
    augment.add_argument(
        "overrides", nargs="*", help="view key=value overrides, e.g. reverb.p=1 speed.factors=[0.9,1.1]"
    )


def _add_evaluation_options(
    parser: argparse.ArgumentParser,
    seeds: int = 5,
    tasks: bool = True,
    suite: str | None = "utterance",
    baselines: bool = False,
    head_positional: bool = False,
) -> None:
    """The options of every command that evaluates with the downstream harness (``probe``,
    ``benchmark``, ``ablate`` and the studies), read back by :func:`_evaluation_plan`."""
    parser.add_argument("--seeds", type=int, default=seeds, help="number of seeds (0..N-1)")
    if tasks:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--suite",
            default=suite,
            help="a named task set: 'mini' (every task on the shared mini corpora), 'utterance' "
            "(speaker, gender, emotion, keyword) or 'superb' (SUPERB's tasks on their own corpora, "
            f"skipping those not under --data-root); default: {suite or '--tasks'}",
        )
        which.add_argument(
            "--tasks",
            default=None if suite else "all",
            help="comma-separated task names, or 'all' whose corpus is present (see speechssl.downstream.tasks)",
        )
        parser.add_argument("--data-root", default="../shared/data", help="folder holding the corpora")
    parser.add_argument(
        "--cache-dir",
        help="feature cache folder (default: $SPEECHSSL_CACHE/features or ~/.cache/speechssl/features)",
    )
    parser.add_argument("--no-cache", action="store_true", help="recompute features; store nothing")
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        help="share of a split's files that may be bad (unreadable or too short: skipped, counted, "
        "listed) before the evaluation refuses (default: 0.05, EvaluationPlan.max_bad_fraction)",
    )
    if baselines:
        parser.add_argument(
            "--baselines", default="fbank", help="comma-separated upstream specs evaluated beside the models"
        )
    parser.add_argument(
        "--head",
        action="append",
        default=[],
        help="head-training key=value (repeatable), e.g. --head lr=3e-3; asr.<key>=value for the CTC "
        "head, e.g. --head asr.hidden=256; xvector.<key>=value for the ASV x-vector head, e.g. "
        "--head xvector.max_epochs=5",
    )
    if head_positional:
        parser.add_argument(
            "head_overrides",
            nargs="*",
            metavar="overrides",
            help="head-training key=value overrides (as --head), e.g. head=mlp lr=3e-3 asr.hidden=256",
        )


def _add_study_parsers(sub: argparse._SubParsersAction) -> None:
    ablate = sub.add_parser(
        "ablate", help="pretrain a grid of loss variants x lambda x projector and compare them"
    )
    ablate.add_argument(
        "--config", default="barlow_twins_study", help="base pretraining config of the losses' method"
    )
    ablate.add_argument(
        "--losses",
        default="bt,modified_bt,vicreg,invariance_only,redundancy_only",
        help="comma-separated loss variants of one method: bt, modified_bt, vicreg, invariance_only, "
        "redundancy_only, frame_bt (Barlow Twins); hubert, hubert_all_frames (HuBERT, e.g. --config hubert_tiny)",
    )
    ablate.add_argument("--lambdas", default="0.005", help="comma-separated redundancy weights")
    ablate.add_argument(
        "--projectors", default="512x512", help="comma-separated projector shapes, e.g. 512x512"
    )
    ablate.add_argument("--output", default="outputs/ablate", help="study folder")
    _add_evaluation_options(ablate, baselines=True)
    ablate.add_argument("overrides", nargs="*", help="pretraining key=value overrides for every variant")

    study = sub.add_parser("study", help="the Barlow Twins study's analyses, each writing a report")
    kinds = study.add_subparsers(dest="study", required=True)
    data = kinds.add_parser(
        "pretraining-data", help="pretrain on each corpus, the synthetic one and their union"
    )
    data.add_argument("--config", default="barlow_twins_study", help="base pretraining config")
    data.add_argument(
        "--corpora",
        default="librispeech,ravdess,arabic_speech_commands,fsdd,synthetic,union",
        help="comma-separated corpora (and 'union' of them)",
    )
    data.add_argument("--output", default="outputs/pretraining_data", help="study folder")
    _add_evaluation_options(data, baselines=True)
    data.add_argument("overrides", nargs="*", help="pretraining key=value overrides for every corpus")

    xcorr = kinds.add_parser(
        "cross-correlation", help="C of the two views, untrained vs trained, and over training"
    )
    xcorr.add_argument("--run-dir", required=True, help="a pretraining run folder")
    xcorr.add_argument("--output", default="outputs/cross_correlation", help="report folder")
    xcorr.add_argument("--utterances", type=int, default=512)
    xcorr.add_argument("--seed", type=int, default=0)

    disentangle = kinds.add_parser(
        "disentanglement", help="DCI, MIG, SAP, modularity per layer on the synthetic corpus's factors"
    )
    disentangle.add_argument("--upstreams", required=True, help="comma-separated upstream specs")
    disentangle.add_argument("--output", default="outputs/disentanglement", help="report folder")
    disentangle.add_argument("--seeds", type=int, default=3, help="probe seeds of the per-layer curves")
    disentangle.add_argument("--cache-dir", help="feature cache folder")
    disentangle.add_argument(
        "--dci-estimator",
        default="gradient_boosting",
        help="DCI's predictor: gradient_boosting (the reference's) or random_forest (faster on wide codes)",
    )
    disentangle.add_argument(
        "--sap-estimator",
        default="linear_svm",
        help="SAP's one-dimension scorer: linear_svm (the reference's) or nearest_mean",
    )

    multimodal = kinds.add_parser(
        "multimodal",
        help="the same encoder pretrained with and without a second modality (digit words, digit images)",
    )
    multimodal.add_argument(
        "--variants",
        default="speech_only,joint_text,joint_image",
        help="comma-separated: speech_only (the reference), joint_text, joint_image, speech_text, visually_grounded",
    )
    multimodal.add_argument("--alpha", type=float, default=1.0, help="weight of the multi-modal term")
    multimodal.add_argument("--output", default="outputs/multimodal", help="study folder")
    _add_evaluation_options(multimodal, seeds=3, baselines=True)
    multimodal.add_argument("overrides", nargs="*", help="pretraining key=value overrides for every variant")

    versus = kinds.add_parser(
        "compare", help="a pretrained model vs its random-init architecture vs log-mel: the results page"
    )
    versus.add_argument("--model", required=True, help="the pretrained upstream (run folder or checkpoint)")
    versus.add_argument(
        "--random-init",
        default="random:tiny",
        help="same architecture, random weights (random:<preset|yaml>)",
    )
    versus.add_argument("--baseline", default="fbank", help="hand-crafted features to beat")
    versus.add_argument("--output", default="outputs/compare", help="report folder (results.md, report.md)")
    _add_evaluation_options(versus, seeds=10)


def _add_quickstart_parser(sub: argparse._SubParsersAction) -> None:
    quick = sub.add_parser(
        "quickstart", help="synthetic corpus → Barlow Twins pretraining → probe vs log-mel, with a report"
    )
    quick.add_argument("--output", default="outputs/quickstart", help="report folder")
    quick.add_argument(
        "--steps", type=int, default=None, help="pretraining steps (default: the tiny config's)"
    )
    quick.add_argument("overrides", nargs="*", help="pretraining key=value overrides")


def _add_benchmark_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "benchmark",
        help="evaluate upstreams on registered downstream tasks over several seeds, with a report",
    )
    bench.add_argument(
        "--upstreams", required=True, help="comma-separated upstream specs (as for probe --upstream)"
    )
    bench.add_argument("--output", default="outputs/benchmark", help="report folder")
    _add_evaluation_options(bench, suite=None, head_positional=True)


def _add_units_corpus_options(parser: argparse.ArgumentParser) -> None:
    """The corpus options of ``units`` commands, resolved as pretraining's ``data.corpus``/``data.root``."""
    parser.add_argument("--corpus", required=True, help="corpus name (fsdd, librispeech, ..., synthetic)")
    parser.add_argument(
        "--data-root", help="the corpus folder or manifest file (synthetic: where it is generated)"
    )
    parser.add_argument("--split", help="keep this split only (default: every row)")
    parser.add_argument("--max-utterances", type=int, help="a seeded random subset of this many utterances")
    parser.add_argument("--max-batch-seconds", type=float, default=60.0, help="padded audio per batch")
    parser.add_argument("--device", default="cpu", help="where features are computed")
    parser.add_argument(
        "overrides", nargs="*", help="data key=value overrides, e.g. synthetic.num_utterances=40"
    )


def _add_units_tokenizer_options(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--units", help="a tokenizer folder written by 'speechssl units fit'")
    which.add_argument("--quantizer", help="a VQ-APC or wav2vec 2.0 run or checkpoint folder")
    parser.add_argument(
        "--cache-dir",
        help="unit labels cache folder (default: $SPEECHSSL_CACHE/units or ~/.cache/speechssl/units)",
    )


def _add_units_parser(sub: argparse._SubParsersAction) -> None:
    units = sub.add_parser("units", help="discrete units: fit k-means, label a corpus, score against truth")
    units_sub = units.add_subparsers(dest="units_command", required=True)

    fit = units_sub.add_parser("fit", help="fit k-means units on a corpus's frames; write a tokenizer folder")
    fit.add_argument(
        "--features",
        required=True,
        help="'mfcc', a run/checkpoint folder (its encoder) or an upstream spec (hf:<dir>, fbank, random:<preset>)",
    )
    fit.add_argument(
        "--layer", type=int, default=-1, help="encoder hidden state (0 = context input, -1 = last)"
    )
    rate = fit.add_mutually_exclusive_group()
    rate.add_argument("--pool", type=int, help="average this many feature frames into one unit frame")
    rate.add_argument(
        "--frame-rate-of", help="pool to the frame rate of this encoder (preset, encoder YAML or run folder)"
    )
    fit.add_argument("--no-deltas", action="store_true", help="MFCC without Δ and ΔΔ")
    fit.add_argument("--k", type=int, required=True, help="number of units")
    fit.add_argument("--max-frames", type=int, default=1_000_000, help="frames sampled for fitting")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--backend", default="auto", choices=["auto", "sklearn", "faiss"])
    fit.add_argument("--n-init", type=int, default=3, help="k-means++ restarts")
    fit.add_argument("--max-iter", type=int, default=100, help="passes over the sample")
    fit.add_argument(
        "--output", required=True, help="tokenizer folder (tokenizer.yaml, .safetensors, fit_report.json)"
    )
    _add_units_corpus_options(fit)

    label = units_sub.add_parser(
        "label", help="write (or reuse) the unit labels of every utterance of a corpus"
    )
    _add_units_tokenizer_options(label)
    _add_units_corpus_options(label)

    score = units_sub.add_parser("score", help="label purity, cluster purity, PNMI and codebook usage")
    _add_units_tokenizer_options(score)
    score.add_argument("--truth", required=True, help="'phone' (phone_times alignments) or a label column")
    score.add_argument("--output", help="JSON file for the scores")
    _add_units_corpus_options(score)


# library option names -> the flags that set them (library errors name options, the CLI shows flags)
OPTION_FLAGS = {
    "corpora": "--corpora",
    "data_root": "--data-root",
    "folds": "--folds",
    "stratify": "--stratify",
    "valid_fraction": "--valid",
    "test_fraction": "--test",
    "frame_rate_of": "--frame-rate-of",
    "lambdas": "--lambdas",
    "layer": "--layer",
    "losses": "--losses",
    "max_bad_fraction": "--max-bad-fraction",
    "max_utterances": "--max-utterances",
    "projectors": "--projectors",
    "seeds": "--seeds",
    "suite": "--suite",
    "tasks": "--tasks",
}


# options whose names are too common to map in every command's messages
COMMAND_OPTION_FLAGS = {
    "export": {"format": "--format"},
    "import": {"run_dir": "--run-dir"},
    "units": {"features": "--features", "pool": "--pool", "quantizer": "--quantizer", "units": "--units"},
}


def with_flags(message: str, command: str | None = None) -> str:
    """A library error message with the option it starts with (``suite: ...``, ``suite mini: ...``)
    and any ``snake_case`` option it names shown as the CLI flag (of ``command``'s, too)."""
    flags = {**OPTION_FLAGS, **COMMAND_OPTION_FLAGS.get(command or "", {})}
    leading = re.match(r"\w+(?=[: ])", message)
    if leading and leading[0] in flags:
        message = flags[leading[0]] + message[leading.end() :]
    for option, flag in flags.items():
        if "_" in option:
            message = re.sub(rf"(?<![\w-]){option}\b", flag, message)
    return message


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechssl",
        description="Self-supervised speech representation learning: pretrain, probe, analyse.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {speechssl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_data_parser(sub)
    _add_pretrain_parser(sub)
    _add_interop_parsers(sub)
    _add_probe_parser(sub)
    _add_quickstart_parser(sub)
    _add_benchmark_parser(sub)
    _add_augment_parser(sub)
    _add_study_parsers(sub)
    _add_units_parser(sub)
    return parser


def _load_corpus(path: str, corpus: str | None, bad_files=None):
    """A manifest file, a lhotse CutSet file, or a corpus folder in its native layout (bad headers
    recorded in ``bad_files``)."""
    from speechssl.data import Manifest, detect_corpus, load_corpus
    from speechssl.data.corpora.lhotse import is_cutset_file

    source = Path(path)
    if source.is_file() and corpus != "lhotse" and not is_cutset_file(source):
        return Manifest.load(source)
    return load_corpus(corpus or detect_corpus(source), source, bad_files=bad_files)


def _run_data(args: argparse.Namespace) -> int:
    # each branch imports what it needs: listing and manifests never import torch
    if args.data_command == "list":
        from speechssl.data import available_corpora
        from speechssl.data.pairing import corpus_pairings

        for name, loader in sorted(available_corpora().items()):
            summary = (loader.__doc__ or "").strip().splitlines()[0] if loader.__doc__ else ""
            print(f"{name:24s} {summary}")
            for pairing in corpus_pairings(name):
                print(f"{'':24s}   pairs with {pairing.modality} ({pairing.column}): {pairing.description}")
        return 0
    if args.data_command == "pair-digits":
        from speechssl.data import load_corpus
        from speechssl.data.pairing import pair_digit_images, write_digit_pairing

        manifest = write_digit_pairing(
            pair_digit_images(load_corpus("fsdd", args.root), args.seed), args.output
        )
        splits = ", ".join(
            f"{split}: {n} utterances of {len(set(manifest.filter(split=split).column('speaker')))} speaker(s)"
            for split, n in manifest.counts("split").items()
        )
        print(f"wrote {len(manifest)} speech-image pairs to {args.output} ({splits})")
        return 0
    if args.data_command == "manifest":
        from speechssl.data import BadFileSummary, load_corpus

        bad_files = BadFileSummary()
        if args.pattern:
            manifest = load_corpus("pattern", args.root, bad_files, pattern=args.pattern)
        else:
            manifest = _load_corpus(args.root, args.corpus, bad_files)
        manifest.save(args.output)
        labels = ", ".join(f"{c} ({len(manifest.counts(c))} values)" for c in manifest.label_columns)
        print(
            f"wrote {len(manifest)} utterances of {len(manifest.counts('speaker'))} speakers to {args.output}"
            f"; labels: {labels or 'none'}"
        )
        if bad_files:
            print(bad_files.format(limit=5))
        return 0
    if args.data_command == "split":
        from speechssl.data import Manifest, group_disjoint_split, with_fold_column

        manifest = Manifest.load(args.manifest)
        if args.folds is not None:
            manifest = with_fold_column(manifest, args.folds, args.group, args.stratify, args.seed)
            counts = manifest.counts("fold")
            print(
                f"{args.folds} {args.group}-disjoint folds: "
                + ", ".join(f"{k}: {n}" for k, n in counts.items())
            )
        else:
            manifest = group_disjoint_split(
                manifest, args.valid, args.test, args.group, args.stratify, args.seed
            )
            print(
                f"{args.group}-disjoint splits: "
                + ", ".join(f"{k}={n}" for k, n in manifest.counts("split").items())
            )
        manifest.save(args.output)
        print(f"wrote {args.output}")
        return 0
    if args.data_command == "validate":
        from speechssl.data import BadFileSummary, validate_manifest

        bad_files = BadFileSummary()
        manifest = _load_corpus(args.path, args.corpus, bad_files)
        report = validate_manifest(manifest, decode=not args.no_decode, bad_files=bad_files)
        print(json.dumps(report.to_dict(), indent=2) if args.json else report.format())
        return 0 if report.ok else 2
    if args.data_command == "shard":
        from speechssl.data.manifest import Manifest
        from speechssl.data.shards import ShardIndex, parse_size, write_shards

        index = ShardIndex.load(
            write_shards(Manifest.load(args.manifest), args.output, parse_size(args.shard_size))
        )
        print(f"{len(index)} utterances in {len(index.names)} shard(s): {index.folder / 'index.json'}")
        return 0
    from speechssl.config import apply_overrides, from_dict
    from speechssl.data import SyntheticConfig, generate_synthetic_corpus

    config = from_dict(SyntheticConfig, apply_overrides({}, args.overrides), where="synthetic")
    manifest = generate_synthetic_corpus(config, Path(args.output))
    print(f"{len(manifest)} synthetic utterances in {args.output}")
    return 0


def _run_pretrain(args: argparse.Namespace) -> int:
    from speechssl.train import load_pretrain_config, pretrain

    overrides = list(args.overrides)
    if args.iteration is not None:
        overrides.append(f"objective.targets.iteration={args.iteration}")
    if args.teacher is not None:
        overrides.append(f"objective.targets.teacher={args.teacher}")
    if args.init_from is not None:
        overrides.append(f"train.init_from={args.init_from}")
    config = load_pretrain_config(args.config, overrides, method=args.method)
    result = pretrain(config, Path(args.run_dir), resume=args.resume)
    print(f"finished at step {result.step}, loss {result.loss:.4f}; checkpoint: {result.checkpoint}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    from speechssl.interop import import_model

    checkpoint = import_model(args.source, args.run_dir)
    print(f"imported {args.source}: {checkpoint}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from speechssl.interop import export_checkpoint

    output = export_checkpoint(args.run, args.format, args.output)
    print(f"wrote the {args.format} export of {args.run}: {output}")
    return 0


def _task_names(args: argparse.Namespace) -> list[str]:
    """The registered tasks named by ``--tasks`` (``all``: those whose corpus is present) or ``--suite``."""
    from speechssl.downstream.tasks import available_tasks, select_suite

    if args.tasks and args.tasks != "all":
        return args.tasks.split(",")
    if args.suite:
        tasks, skipped = select_suite(args.suite, args.data_root)
        for name, reason in skipped.items():
            print(f"skipping {name}: {reason}")
        return tasks
    if args.tasks == "all":
        registry = [task for task in available_tasks().values() if task.requires is None]
        special = [f"{task.name} ({task.requires})" for task in available_tasks().values() if task.requires]
        if special:
            print(
                f"skipping tasks that need a particular upstream (name them in --tasks): {', '.join(special)}"
            )
        missing = {t.name: t.missing_paths(args.data_root) for t in registry}
        tasks = [name for name, folders in missing.items() if not folders]
        skipped = [f"{name} ({', '.join(map(str, folders))})" for name, folders in missing.items() if folders]
        if skipped:
            print(f"skipping tasks whose corpus is not under --data-root: {', '.join(skipped)}")
        return tasks
    raise ValueError("tasks: expected task names, 'all' or a suite, found none")


def _evaluation_plan(args: argparse.Namespace, tasks: Sequence[str] | None = None):
    """The :class:`~speechssl.downstream.plan.EvaluationPlan` of the options that
    :func:`_add_evaluation_options` declared (``tasks``: instead of ``--tasks``/``--suite``)."""
    from speechssl.config import apply_overrides, from_dict
    from speechssl.downstream.asr import CTCTrainingConfig
    from speechssl.downstream.cache import FeatureCache
    from speechssl.downstream.plan import EvaluationPlan
    from speechssl.downstream.training import HeadTrainingConfig
    from speechssl.downstream.verification import XVectorTrainingConfig

    overrides = [*args.head, *getattr(args, "head_overrides", [])]
    head = [o for o in overrides if not o.startswith(("asr.", "xvector."))]
    asr = [o.removeprefix("asr.") for o in overrides if o.startswith("asr.")]
    xvector = [o.removeprefix("xvector.") for o in overrides if o.startswith("xvector.")]
    return EvaluationPlan(
        tasks=_task_names(args) if tasks is None else tasks,
        seeds=range(args.seeds),
        cache=FeatureCache(args.cache_dir, enabled=not args.no_cache),
        data_root=getattr(args, "data_root", "../shared/data"),
        head=from_dict(HeadTrainingConfig, apply_overrides({}, head), where="head"),
        asr=from_dict(CTCTrainingConfig, apply_overrides({}, asr), where="asr"),
        xvector=from_dict(XVectorTrainingConfig, apply_overrides({}, xvector), where="xvector"),
        head_overrides=apply_overrides({}, head),
        asr_overrides=apply_overrides({}, asr),
        baselines=[b for b in getattr(args, "baselines", "").split(",") if b],
        **({} if args.max_bad_fraction is None else {"max_bad_fraction": args.max_bad_fraction}),
    )


def _print_cache_stats(plan) -> None:
    stats = plan.cache.stats
    print(
        f"feature cache: {stats.hits} hit(s), {stats.misses} miss(es), {stats.compute_seconds:.1f} s extracting"
    )


def _other_rank() -> bool:
    """A rank other than 0 of ``torchrun``: it helped extract features; rank 0 reports."""
    from speechssl.distributed import launched_rank

    return launched_rank() != 0


def _run_probe(args: argparse.Namespace) -> int:
    from speechssl.data import BadFileSummary
    from speechssl.downstream.report import format_probe_table
    from speechssl.downstream.runner import probe_upstreams, write_probe_results

    plan = _evaluation_plan(args, tasks=args.task)
    bad_files = BadFileSummary()
    manifest = _load_corpus(args.manifest or args.corpus, args.corpus_name, bad_files)
    output = Path(args.output) if args.output else None
    rows = probe_upstreams(
        args.upstream, manifest, plan, args.layer, args.max_batch_seconds, output, bad_files
    )
    if _other_rank():
        return 0
    print(format_probe_table(rows))
    _print_cache_stats(plan)
    if output is not None:
        print(f"results in {write_probe_results(rows, plan.head, output)}")
    return 0


def _suite_context(args: argparse.Namespace) -> list:
    """The report tables saying which protocol a suite follows and which of its tasks were skipped."""
    from speechssl.downstream.report import ReportTable
    from speechssl.downstream.superb import PROTOCOL_VERSION
    from speechssl.downstream.tasks import select_suite

    if not args.suite or (args.tasks and args.tasks != "all"):
        return []
    _, skipped = select_suite(args.suite, args.data_root)
    tables = []
    if args.suite == "superb":
        rows = [["superb_ks, superb_ic, superb_sid, superb_er", PROTOCOL_VERSION]]
        tables.append(ReportTable("Protocol", ["tasks", "protocol"], rows))
    if skipped:
        rows = [[name, reason] for name, reason in skipped.items()]
        tables.append(ReportTable("Skipped tasks", ["task", "reason"], rows))
    return tables


def _run_benchmark(args: argparse.Namespace) -> int:
    from speechssl.downstream.evaluate import run_evaluation

    plan = _evaluation_plan(args)
    run_evaluation(args.upstreams.split(","), plan, args.output, context=_suite_context(args))
    if _other_rank():
        return 0
    print(Path(args.output, "report.md").read_text())
    _print_cache_stats(plan)
    return 0


def _run_augment(args: argparse.Namespace) -> int:
    from speechssl.analysis.views import render_views
    from speechssl.augment import ViewConfig, build_view
    from speechssl.config import apply_overrides, from_dict, to_dict
    from speechssl.data import load_audio
    from speechssl.train import load_pretrain_config

    view = getattr(load_pretrain_config(args.config, []).objective, "view", None) if args.config else None
    base = to_dict(view) if view is not None else {}
    config = from_dict(ViewConfig, apply_overrides(base, args.overrides), where="view")
    files = render_views(load_audio(args.audio), build_view(config), args.output, seed=args.seed)
    for name, path in files.items():
        print(f"{name:9s} {path}")
    return 0


def _run_ablate(args: argparse.Namespace) -> int:
    from speechssl.studies.ablation import run_ablation

    plan = _evaluation_plan(args)
    try:
        lambdas = [float(value) for value in args.lambdas.split(",")]
    except ValueError:
        raise ValueError(f"--lambdas: expected comma-separated numbers, found {args.lambdas!r}") from None
    result = run_ablation(
        args.config,
        args.losses.split(","),
        lambdas,
        args.projectors.split(","),
        args.output,
        plan,
        args.overrides,
    )
    print(result.report.read_text())
    return 0


def _run_study(args: argparse.Namespace) -> int:
    from speechssl.downstream.cache import FeatureCache

    if args.study == "cross-correlation":
        from speechssl.studies.cross_correlation import run_cross_correlation_study

        run_cross_correlation_study(args.run_dir, args.output, args.utterances, args.seed)
    elif args.study == "disentanglement":
        from speechssl.studies.disentanglement import run_disentanglement_study

        run_disentanglement_study(
            args.upstreams.split(","),
            args.output,
            FeatureCache(args.cache_dir),
            range(args.seeds),
            dci_estimator=args.dci_estimator,
            sap_estimator=args.sap_estimator,
        )
    elif args.study == "multimodal":
        from speechssl.studies.multimodal import run_multimodal_study

        run_multimodal_study(
            args.output, _evaluation_plan(args), args.variants.split(","), args.alpha, args.overrides
        )
    elif args.study == "compare":
        from speechssl.studies.comparison import run_comparison

        page = run_comparison(
            args.model, args.random_init, args.baseline, args.output, _evaluation_plan(args)
        )
        print(page.read_text())
        return 0
    else:
        from speechssl.studies.pretraining_data import run_pretraining_data_study

        run_pretraining_data_study(
            args.config, args.corpora.split(","), args.output, _evaluation_plan(args), args.overrides
        )
    print(Path(args.output, "report.md").read_text())
    return 0


def _run_quickstart(args: argparse.Namespace) -> int:
    from speechssl.quickstart import run_quickstart

    run_quickstart(Path(args.output), steps=args.steps, overrides=args.overrides)
    return 0


def _units_manifest(args: argparse.Namespace):
    from speechssl.units import corpus_manifest

    return corpus_manifest(
        args.corpus, args.data_root, args.split, args.overrides, args.max_utterances, getattr(args, "seed", 0)
    )


def _run_units(args: argparse.Namespace) -> int:
    from speechssl.models.kmeans import KMeansConfig, fit_units
    from speechssl.models.units import save_unit_tokenizer
    from speechssl.units import (
        label_corpus,
        load_tokenizer,
        score_units,
        unit_features,
    )

    manifest = _units_manifest(args)
    if args.units_command == "fit":
        config = KMeansConfig(
            k=args.k,
            max_frames=args.max_frames,
            n_init=args.n_init,
            max_iter=args.max_iter,
            seed=args.seed,
            backend=args.backend,
        )
        features = unit_features(
            args.features, args.layer, args.pool, args.frame_rate_of, deltas=not args.no_deltas
        )
        tokenizer, report = fit_units(
            features, manifest, config, max_batch_seconds=args.max_batch_seconds, device=args.device
        )
        output = save_unit_tokenizer(tokenizer, args.output)
        report = {"features_spec": args.features, "corpus": args.corpus, **report}
        (output / "fit_report.json").write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"{report['k']} units ({report['used_units']} used) from {report['frames']} frames of "
            f"{report['utterances']} utterances, {report['backend']}, inertia/frame "
            f"{report['mean_squared_distance']:.4g}; tokenizer: {output}"
        )
        return 0
    tokenizer = load_tokenizer(args.units, args.quantizer)
    labels = label_corpus(
        tokenizer, manifest, args.cache_dir, max_batch_seconds=args.max_batch_seconds, device=args.device
    )
    if args.units_command == "label":
        print(f"{'reused' if labels.hit else 'wrote'} units of {len(labels)} utterances: {labels.entry}")
        return 0
    quality = score_units(labels, manifest, args.truth)
    scores = {"truth": args.truth, "corpus": args.corpus, "labels": str(labels.entry), **quality.to_dict()}
    print(json.dumps(scores, indent=2))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(scores, indent=2) + "\n")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``, accepting ``key=value`` overrides on both sides of options
    (``pretrain A=1 --run-dir X B=2``): argparse takes the first run of positionals and leaves
    the rest unrecognised; those that are overrides join the others, in order."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    field = next((name for name in ("overrides", "head_overrides") if hasattr(args, name)), None)
    if extra and (field is None or any(token.startswith("-") for token in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, field, [*getattr(args, field), *extra])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    handlers = {
        "data": _run_data,
        "pretrain": _run_pretrain,
        "import": _run_import,
        "export": _run_export,
        "probe": _run_probe,
        "quickstart": _run_quickstart,
        "benchmark": _run_benchmark,
        "augment": _run_augment,
        "ablate": _run_ablate,
        "study": _run_study,
        "units": _run_units,
    }
    try:
        return handlers[args.command](args)
    except Exception as err:
        if not isinstance(err, _user_errors()):
            raise
        print(f"speechssl: error: {with_flags(str(err), args.command)}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions shown as one line: bad input, a missing optional dependency, and training
    stopped for a stated reason.

    The trainer's errors are only looked up once the trainer has been imported (a command
    that never imported it cannot have raised them), so light commands never import torch.
    """
    from speechssl.data.audio import AudioError

    errors: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError, AudioError)
    trainer = sys.modules.get("speechssl.train.trainer")
    if trainer is not None:
        errors += (trainer.NonFiniteLossError, trainer.TrainingInterruptedError)
    extraction = sys.modules.get("speechssl.downstream.rank_extraction")
    if extraction is not None:
        errors += (extraction.RankFailedError,)
    return errors


if __name__ == "__main__":
    sys.exit(main())
