"""Downstream probing with the feature cache vs recomputing the upstream every epoch, side by side.

Frameworks that keep the upstream in the probing loop (s3prl's default) pay one upstream
pass over the training and validation audio per epoch and per seed. speechssl pools the
features once into the cache and trains heads on them. This measures both on one task:

- *recompute*: for every epoch the head trains, the upstream runs over the train and valid
  audio again (timed by really running it), plus the same head training;
- *cache, cold*: one extraction into an empty cache, then head training;
- *cache, warm*: head training on features read back from the cache (every further seed).

    python benchmarks/probe_cache.py [--upstream random:tiny] [--task keyword_fsdd] [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from speechssl.downstream.cache import FeatureCache, compute_pooled
from speechssl.downstream.tasks import get_task
from speechssl.downstream.training import HeadTrainingConfig, train_utterance_classifier
from speechssl.upstream import build_upstream

DATA_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="random:tiny")
    parser.add_argument("--task", default="keyword_fsdd")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    args = parser.parse_args()

    task = get_task(args.task)
    manifest = task.load(args.data_root)
    fold = task.folds(manifest)[0]
    upstream = build_upstream(args.upstream)
    config = HeadTrainingConfig()

    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root)
        started = time.perf_counter()
        pooled = cache.pooled(upstream, manifest)
        extraction = time.perf_counter() - started
        rows, column = fold.split_rows(), fold.column(task.label)
        labels = {split: [str(column[i]) for i in indices] for split, indices in rows.items()}
        features = {split: pooled.mean[:, indices, :].astype("float32") for split, indices in rows.items()}

        heads, epochs = [], []
        for seed in range(args.seeds):
            started = time.perf_counter()
            result = train_utterance_classifier(features, labels, config, seed)
            heads.append(time.perf_counter() - started)
            epochs.append(result.epochs_run)

        started = time.perf_counter()
        if not cache.pooled(upstream, manifest).hit:
            raise RuntimeError("expected the second extraction to be a cache hit")
        warm_read = time.perf_counter() - started

    # The upstream pass over the train and valid audio that each epoch would make, timed by
    # running it (without the cache) once per epoch of the first seed.
    seen = fold.filter(split=["train", "valid"])
    started = time.perf_counter()
    for _ in range(epochs[0]):
        compute_pooled(upstream, seen)
    recompute_first_seed = time.perf_counter() - started
    per_pass = recompute_first_seed / epochs[0]

    recompute = sum(e * per_pass + h for e, h in zip(epochs, heads, strict=True))
    cached = extraction + sum(heads)
    warm_total = warm_read + sum(heads)
    utterances = len(manifest)
    print(f"## {args.task} ({utterances} utterances), upstream {args.upstream}, {args.seeds} seeds\n")
    print(f"upstream pass over train + valid: {per_pass:.2f} s; head epochs per seed: {epochs}\n")
    print("| mode | wall time (s) | speed-up vs recompute |")
    print("|---|---:|---:|")
    for name, seconds in (
        ("recompute upstream every epoch", recompute),
        ("cache, cold (extract once)", cached),
        ("cache, warm (features on disk)", warm_total),
    ):
        print(f"| {name} | {seconds:.1f} | {recompute / seconds:.1f}× |")


if __name__ == "__main__":
    main()
