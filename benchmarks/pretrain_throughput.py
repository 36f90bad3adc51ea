"""Pretraining throughput, side by side, in audio seconds processed per wall-clock second.

Two tables from one run:

1. Barlow Twins optimizer steps (two views, forward + backward + AdamW) for encoder presets,
   on a fixed in-memory batch, so only the model is timed.
2. The data pipeline alone (decode, resample to 16 kHz, crop, pad) with 0 vs N DataLoader
   workers over real corpora from ../shared/data (FSDD at 8 kHz, Mini LibriSpeech FLAC), or
   the synthetic corpus when they are absent.

    python benchmarks/pretrain_throughput.py [--device cuda] [--presets tiny,small] [--steps 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from speechssl.data import (
    AudioDataset,
    DurationBatchSampler,
    Manifest,
    SyntheticConfig,
    build_dataloader,
    generate_synthetic_corpus,
    load_corpus,
)
from speechssl.data.batch import AudioBatch
from speechssl.methods import build_method, method_config
from speechssl.models.encoder import SpeechEncoder, load_encoder_preset
from speechssl.train.config import OptimConfig
from speechssl.train.trainer import build_optimizer

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def time_training_steps(preset: str, device: torch.device, steps: int, batch: int, seconds: float) -> dict:
    """Audio seconds per second of Barlow Twins updates of encoder ``preset``."""
    torch.manual_seed(0)
    encoder = SpeechEncoder.from_config(load_encoder_preset(preset))
    method = build_method("barlow_twins", method_config("barlow_twins", {"projector": [512, 512]}), encoder)
    method.to(device).train()
    optimizer = build_optimizer(method, OptimConfig())
    samples = int(seconds * 16000)
    waveforms = torch.randn(batch, samples, device=device) * 0.1  # (batch, samples)
    lengths = torch.full((batch,), samples, device=device)
    audio = AudioBatch(waveforms, lengths, ids=[str(i) for i in range(batch)])
    autocast = device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = method(audio).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - started
    parameters = sum(p.numel() for p in encoder.parameters())
    return {
        "preset": preset,
        "params_m": parameters / 1e6,
        "step_s": elapsed / steps,
        "audio_s_per_s": batch * seconds * steps / elapsed,
    }


def corpora_to_time() -> list[tuple[str, Manifest]]:
    """The shared real corpora that are present, else the synthetic corpus."""
    found = [
        (f"{name} ({label})", load_corpus(name, SHARED_DATA / folder))
        for name, folder, label in (
            ("fsdd", "fsdd", "8 kHz WAV → 16 kHz"),
            ("librispeech", "mini_librispeech/LibriSpeech", "16 kHz FLAC"),
        )
        if (SHARED_DATA / folder).is_dir()
    ]
    if found:
        return found
    root = Path(tempfile.gettempdir()) / "speechssl_bench_synthetic"
    return [("synthetic (16 kHz WAV)", generate_synthetic_corpus(SyntheticConfig(), root))]


def time_data_pipeline(manifest: Manifest, workers: int, max_batch_seconds: float) -> dict:
    """Audio seconds per second delivered by the DataLoader with ``workers`` worker processes."""
    dataset = AudioDataset(manifest, crop_seconds=2.0)
    sampler = DurationBatchSampler(dataset.effective_durations(), max_batch_seconds, seed=0)
    started = time.perf_counter()
    audio_seconds = 0.0
    for batch in build_dataloader(dataset, sampler, num_workers=workers):
        audio_seconds += float(batch.lengths.sum()) / 16000
    elapsed = time.perf_counter() - started
    return {"workers": workers, "audio_s_per_s": audio_seconds / elapsed, "elapsed_s": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="utterances per step")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per utterance")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    device = torch.device(args.device)

    print(
        f"## Barlow Twins updates on {device} ({args.batch} × {args.seconds:g} s per step, torch threads "
        f"{torch.get_num_threads()})\n"
    )
    print("| encoder preset | parameters (M) | s / step | audio s / s |")
    print("|---|---:|---:|---:|")
    for preset in args.presets.split(","):
        row = time_training_steps(preset, device, args.steps, args.batch, args.seconds)
        print(
            f"| {row['preset']} | {row['params_m']:.1f} | {row['step_s']:.3f} | {row['audio_s_per_s']:.0f} |"
        )

    print("\n## Data pipeline (decode + resample + crop + pad), batches of 64 s\n")
    print("| corpus (2 s crops) | workers | audio s / s | epoch time (s) | speed-up vs 0 workers |")
    print("|---|---:|---:|---:|---:|")
    for corpus, manifest in corpora_to_time():
        serial = time_data_pipeline(manifest, 0, 64.0)
        for row in (serial, time_data_pipeline(manifest, args.workers, 64.0)):
            ratio = row["audio_s_per_s"] / serial["audio_s_per_s"]
            cells = f"{row['workers']} | {row['audio_s_per_s']:.0f} | {row['elapsed_s']:.2f} | {ratio:.2f}×"
            print(f"| {corpus} | {cells} |")


if __name__ == "__main__":
    main()
