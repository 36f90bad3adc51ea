"""Pretraining throughput and model FLOPs utilisation (MFU) of the BASE methods, and transformers'.

For wav2vec 2.0, HuBERT, data2vec and Barlow Twins (speechssl's shipped ``<method>_base``
configs; ``--preset tiny`` swaps in the tiny encoder on the waveform CNN and the
``<method>_tiny`` objectives, a CPU smoke run) and for transformers' ``Wav2Vec2ForPreTraining``
of wav2vec 2.0's architecture (``benchmarks/same_architecture.py``), one run prints:

* audio seconds per second of training steps (forward + backward + AdamW step) on one batch
  of ``--batch-seconds`` of audio in equal crops of about ``--crop-seconds``;
* the FLOPs of one step, counted by ``torch.utils.flop_counter.FlopCounterMode`` over the
  forward and backward (matrix products and convolutions; the optimizer and elementwise
  work are not counted), and the achieved TFLOP/s;
* MFU = achieved / peak TFLOP/s, the peak being the device's dense bf16 (under ``--dtype
  bf16``, autocast) or fp32 (no TF32) rate from ``PEAK_TFLOPS`` by device name, or
  ``--peak-tflops``. Without a known peak (any CPU) the MFU column says so.

    python benchmarks/mfu.py [--device cuda] [--dtype bf16] [--steps 10] [--batch-seconds 87.5] [--compile]
    python benchmarks/mfu.py --preset tiny --device cpu --steps 1 --batch-seconds 2 --crop-seconds 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from same_architecture import Contender, padded_batch, training_contenders
from torch.utils.flop_counter import FlopCounterMode

from speechssl.data.batch import AudioBatch

METHODS = ("wav2vec2", "hubert", "data2vec", "barlow_twins")

# Dense peak TFLOP/s by device-name fragment (vendor data sheets; the first fragment found in
# the name wins, so the specific ones come first). fp32 is the non-tensor-core rate: torch's
# default float32 matmul precision ("highest") uses no TF32.
PEAK_TFLOPS = {
    "H200": {"bf16": 989.4, "fp32": 66.9},
    "H100 PCIe": {"bf16": 756.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.5, "fp32": 59.8},
    "H100": {"bf16": 989.4, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp32": 19.5},
}


def device_peak_tflops(device: torch.device, dtype: str) -> float | None:
    """The dense ``dtype`` peak of ``device`` from :data:`PEAK_TFLOPS`; None when unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in PEAK_TFLOPS.items():
        if fragment in name:
            return peaks[dtype]
    return None


def step_flops(module: torch.nn.Module, batch: AudioBatch, autocast: torch.dtype | None) -> int:
    """FLOPs of one forward and backward of ``module`` (eager, whether or not the step is compiled)."""
    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(batch.waveforms.device.type, dtype=autocast, enabled=autocast is not None):
            loss = module(batch).loss
        loss.backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def trainable_parameters(module: torch.nn.Module) -> int:
    """Parameters the optimizer updates (a data2vec teacher's are not)."""
    return sum(parameter.numel() for parameter in module.parameters() if parameter.requires_grad)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(contender: Contender, device: torch.device, steps: int, warmup: int) -> list[float]:
    """Wall seconds of each of ``steps`` training steps, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        contender.step()
    times = []
    for _ in range(steps):
        synchronize(device)
        started = time.perf_counter()
        contender.step()
        synchronize(device)
        times.append(time.perf_counter() - started)
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--dtype", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 on GPUs"
    )
    parser.add_argument("--preset", choices=("tiny", "small", "base"), default="base")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    parser.add_argument(
        "--batch-seconds", type=float, default=87.5, help="audio per step (wav2vec 2.0 BASE per GPU)"
    )
    parser.add_argument("--crop-seconds", type=float, default=15.625, help="about this long each utterance")
    parser.add_argument("--compile", action="store_true", help="torch.compile every model")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's peak, to override the table"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = ("bf16" if device.type == "cuda" else "fp32") if args.dtype == "auto" else args.dtype
    autocast = torch.bfloat16 if dtype == "bf16" else None
    peak = args.peak_tflops or device_peak_tflops(device, dtype)
    count = max(1, round(args.batch_seconds / args.crop_seconds))
    batch = padded_batch([args.batch_seconds / count] * count, device=device)

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    peak_text = f"peak {peak:g} TFLOP/s" if peak else "peak unknown: MFU needs --peak-tflops"
    print(
        f"## Training steps on {name}, {dtype}{', compiled' if args.compile else ''}: {args.preset} preset, "
        f"{count} × {args.batch_seconds / count:.2f} s per step, {args.steps} timed steps; {peak_text}\n"
    )
    print(
        "| model | trainable params (M) | s / step median (min–max) | audio s / s | GFLOP / step | TFLOP/s | MFU |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as scratch:
        for method in filter(None, args.methods.split(",")):
            contenders = training_contenders(
                method,
                args.preset,
                batch,
                Path(scratch) / "units",
                reference=method == "wav2vec2",
                autocast=autocast,
                compile_models=args.compile,
            )
            for contender in contenders:
                label = (
                    f"speechssl {method}"
                    if contender.name == "speechssl"
                    else "transformers Wav2Vec2ForPreTraining"
                )
                flops = step_flops(contender.module, batch, autocast)
                times = step_seconds(contender, device, args.steps, args.warmup)
                median = statistics.median(times)
                achieved = flops / median / 1e12
                mfu = f"{achieved / peak:.1%}" if peak else "n/a"
                print(
                    f"| {label} | {trainable_parameters(contender.module) / 1e6:.1f} | "
                    f"{median:.3f} ({min(times):.3f}–{max(times):.3f}) | {args.batch_seconds / median:.1f} | "
                    f"{flops / 1e9:,.1f} | {achieved:.2f} | {mfu} |",
                    flush=True,
                )
            del contenders


if __name__ == "__main__":
    main()
