"""How far each stage of an fbank encoder moves when the recording condition shifts.

For RAVDESS utterances (every ``--stride``-th file of ``<data-root>/ravdess``), each stage's
frames are read: the log-mel, the CMVN-normalised log-mel, the subsampling's projection and
every context layer. A stage's *shift* under a condition of
:data:`speechssl.downstream.conditions.CONDITIONS` (which keep the length, so frames align)
is ``||shifted - clean||_F / ||clean - mean over frames||_F`` per utterance, averaged: 0
means the stage ignores the condition, 1 means the condition moves the frames as much as
they vary within the utterance. The encoder runs twice, with the preset's front-end and with
the absolute floor alone (``floor_db=None, log_offset=1e-6``, the presets before issue 15),
both from the same random weights.

    python benchmarks/condition_shift.py --data-root ../shared/data [--preset tiny] [--stride 30]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from speechssl.data.audio import load_audio
from speechssl.downstream.conditions import CONDITIONS
from speechssl.models.encoder import SpeechEncoder, load_encoder_preset
from speechssl.models.frontends import utterance_mean_variance_norm


@torch.no_grad()
def stage_frames(encoder: SpeechEncoder, waveform: torch.Tensor) -> dict[str, np.ndarray]:
    """Each stage's ``(frames, dim)`` output for one ``(samples,)`` waveform."""
    x = waveform[None]  # (1, samples)
    lengths = torch.tensor([waveform.shape[0]])
    log_mel, frame_lengths = encoder.frontend.filterbank(x, lengths)  # (1, frames, n_mels)
    stages = {
        "log-mel": log_mel,
        "CMVN": utterance_mean_variance_norm(log_mel, frame_lengths),
    }
    output = encoder(x, None, output_features=True)
    stages["subsampling"] = output.features
    stages |= {f"layer {i}": hidden for i, hidden in enumerate(output.hidden_states)}
    return {name: frames[0].numpy() for name, frames in stages.items()}


def shifts(encoder: SpeechEncoder, waveforms: list[tuple[str, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """condition -> stage -> shift (see the module docstring)."""
    clean = [stage_frames(encoder, w) for _, w in waveforms]
    table = {}
    for name, condition in CONDITIONS.items():
        shifted = [stage_frames(encoder, condition.apply(w, key)) for key, w in waveforms]
        table[name] = {
            stage: float(
                np.mean(
                    [
                        np.linalg.norm(s[stage] - c[stage]) / np.linalg.norm(c[stage] - c[stage].mean(0))
                        for c, s in zip(clean, shifted, strict=True)
                    ]
                )
            )
            for stage in clean[0]
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--stride", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    files = sorted((args.data_root / "ravdess").glob("Actor_*/*.flac"))[:: args.stride]
    if not files:
        raise SystemExit(f"--data-root: no RAVDESS files under {args.data_root / 'ravdess'}")
    waveforms = [(path.stem, torch.from_numpy(load_audio(path))) for path in files]
    config = load_encoder_preset(args.preset)
    variants = {
        "absolute floor (before)": dataclasses.replace(config, log_offset=1e-6, floor_db=None),
        f"preset (floor_db={config.floor_db})": config,
    }
    print(f"{len(files)} RAVDESS utterances, {args.preset} encoder, random weights (seed 0)")
    for label, variant in variants.items():
        torch.manual_seed(0)
        encoder = SpeechEncoder.from_config(variant).eval()
        table = shifts(encoder, waveforms)
        stages = list(next(iter(table.values())))
        print(f"\n{label}\n| condition | " + " | ".join(stages) + " |")
        print("|---|" + "---|" * len(stages))
        for name, row in table.items():
            print(f"| {name} | " + " | ".join(f"{row[s]:.2f}" for s in stages) + " |")


if __name__ == "__main__":
    main()
