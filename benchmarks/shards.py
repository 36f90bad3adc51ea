"""Scale test of the WebDataset shard path: exactly once per epoch, flat memory, throughput vs per-file.

A corpus of ``--count`` tone WAVs of 0.3-1 s is generated once under ``--work`` (reused when
present), then for each size in ``--sizes`` its first N files are sharded and streamed for one
epoch through two gloo ranks x two DataLoader workers: every utterance must be seen exactly
once, and each rank reports its peak RSS and that of its largest worker. At the largest size
the shard path (A) and the per-file path (B, ``AudioDataset`` + ``DurationBatchSampler``)
alternate A B A B ``--repeats`` times; the table gives per-rank utterances/s, median (min-max).

    OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 python benchmarks/shards.py \\
        [--work /tmp/speechssl_shards_bench] [--sizes 5000 20000 50000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile
import torch
import torch.multiprocessing as mp

from speechssl import distributed
from speechssl.data.dataset import AudioDataset, build_dataloader
from speechssl.data.manifest import Manifest, Utterance
from speechssl.data.sampler import DurationBatchSampler
from speechssl.data.shards import ShardIndex, ShardLoaderData, ShardStream, write_shards

SAMPLE_RATE = 16000
MAX_BATCH_SECONDS = 16.0
WORKERS = 2
RANKS = 2


def generate(folder: Path, count: int) -> Manifest:
    """``count`` tone WAVs of 0.3-1 s in ``folder`` (written once) and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.3, 1.0, count)
    rows = []
    for index, duration in enumerate(durations):
        path = folder / f"{index:06d}.wav"
        samples = round(float(duration) * SAMPLE_RATE)
        if not path.exists():
            tone = 0.2 * np.sin(2 * np.pi * (100 + index % 400) * np.arange(samples) / SAMPLE_RATE)
            soundfile.write(path, tone.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        rows.append(Utterance(f"u{index}", path, samples / SAMPLE_RATE, SAMPLE_RATE, "s0", "train"))
    return Manifest(rows)


def _rank(rank: int, path: str, source: str, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(RANKS),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    mp.set_start_method("fork", force=True)  # as in a torchrun rank
    torch.set_num_threads(1)
    distributed.setup_from_env()
    try:
        if path == "shards":
            stream = ShardStream(ShardIndex.load(source), SAMPLE_RATE, None, MAX_BATCH_SECONDS, num_replicas=RANKS,
                                 rank=rank, num_workers=WORKERS)  # fmt: skip
            batches = ShardLoaderData(stream, WORKERS).loader_for_epoch(0, 0)
        else:
            dataset = AudioDataset(Manifest.load(source), SAMPLE_RATE)
            sampler = DurationBatchSampler(dataset.effective_durations(), MAX_BATCH_SECONDS, num_replicas=RANKS,
                                           rank=rank)  # fmt: skip
            sampler.set_epoch(0)
            batches = iter(build_dataloader(dataset, sampler, WORKERS))
        start = time.perf_counter()
        ids = [i for batch in batches for i in batch.ids]
        seconds = time.perf_counter() - start
        del batches
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        Path(out, f"rank{rank}.json").write_text(
            json.dumps({"ids": ids, "seconds": seconds, "rank_mb": own, "worker_mb": workers})
        )
    finally:
        distributed.cleanup()


def run_epoch(path: str, source: Path, out: Path) -> list[dict]:
    """One epoch over two gloo ranks; each rank's ids, seconds and peak RSS (MiB)."""
    out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_rank, args=(path, str(source), port, str(out)), nprocs=RANKS, join=True)
    return [json.loads((out / f"rank{rank}.json").read_text()) for rank in range(RANKS)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/speechssl_shards_bench"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 50000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=64 * 1024**2)
    args = parser.parse_args()

    started = time.perf_counter()
    corpus = generate(args.work / "wavs", max(args.sizes))
    print(f"corpus of {len(corpus)} files ready in {time.perf_counter() - started:.0f} s")
    rows = []
    for size in args.sizes:
        manifest = corpus.select(range(size))
        manifest.save(args.work / f"manifest_{size}.csv")
        shards = args.work / f"shards_{size}"
        if not (shards / "index.json").is_file():
            write_shards(manifest, shards, args.shard_size)
        ranks = run_epoch("shards", shards, args.work / "out")
        seen = Counter(i for rank in ranks for i in rank["ids"])
        assert seen == Counter(manifest.ids), f"{size}: not every utterance exactly once"
        rows.append((size, len(ShardIndex.load(shards).names), ranks))
        print(f"{size}: exactly once, {len(seen)} utterances")

    largest = max(args.sizes)
    rates: dict[str, list[float]] = {"shards": [], "files": []}
    for _ in range(args.repeats):
        for path, source in (
            ("shards", args.work / f"shards_{largest}"),
            ("files", args.work / f"manifest_{largest}.csv"),
        ):
            for rank in run_epoch(path, source, args.work / "out"):
                rates[path].append(len(rank["ids"]) / rank["seconds"])

    print(
        "\n| utterances | shards | peak RSS rank 0 / 1 (MiB) | peak RSS largest worker 0 / 1 (MiB) | exactly once |"
    )
    print("|---:|---:|---:|---:|:---:|")
    for size, count, ranks in rows:
        print(f"| {size} | {count} | {ranks[0]['rank_mb']:.0f} / {ranks[1]['rank_mb']:.0f} | "
              f"{ranks[0]['worker_mb']:.0f} / {ranks[1]['worker_mb']:.0f} | yes |")  # fmt: skip
    print(f"\nper-rank throughput at {largest} utterances ({args.repeats} x A B, 2 ranks):")
    print("| path | utterances/s per rank, median (min-max) |\n|---|---|")
    for path, values in rates.items():
        print(f"| {path} | {statistics.median(values):.0f} ({min(values):.0f}-{max(values):.0f}) |")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
