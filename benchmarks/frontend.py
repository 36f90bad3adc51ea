"""Log-mel and MFCC front ends: speechssl batched vs per-utterance vs librosa vs kaldi-native-fbank.

For each batch shape (utterances of varied lengths, zero-padded into one batch) and each
feature, the contenders run interleaved in one process (A B C ... A B C ...), so machine
noise hits them alike; the table gives each one's median time and its median (min–max)
ratio to speechssl's batched call. kaldi-native-fbank (the ``bench`` extra) is optional:
without it, its column is skipped and the script says so.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/frontend.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import librosa
import numpy as np
import torch
from timing import interleaved

from speechssl.features.filterbank import MFCC, FilterbankConfig, LogMelFilterbank

try:
    import kaldi_native_fbank as knf
except ImportError:
    knf = None

SHAPES = ((1, 1.0), (8, 4.0), (32, 10.0))
"""(utterances, longest seconds); the others are 50–100 % of the longest."""


def make_batch(batch: int, seconds: float, sample_rate: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random audio ``(batch, samples)`` and its ``(batch,)`` lengths, the first at full length."""
    generator = torch.Generator().manual_seed(seed)
    longest = int(seconds * sample_rate)
    lengths = torch.randint(longest // 2, longest + 1, (batch,), generator=generator)
    lengths[0] = longest
    waveforms = torch.randn(batch, longest, generator=generator) * 0.1
    return waveforms, lengths


def contenders(
    feature: str, waveforms: torch.Tensor, lengths: torch.Tensor, config: FilterbankConfig
) -> dict[str, Callable[[], object]]:
    """Zero-argument callables computing ``feature`` for the whole batch, by contender."""
    module = LogMelFilterbank(config) if feature == "log-mel" else MFCC(LogMelFilterbank(config))
    clips = [waveforms[i, : int(n)] for i, n in enumerate(lengths)]
    arrays = [clip.numpy() for clip in clips]
    mel_kwargs = dict(
        sr=config.sample_rate,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.win_length,
        n_mels=config.n_mels,
        center=True,
        pad_mode="constant",
    )

    def batched() -> object:
        with torch.inference_mode():
            return module(waveforms, lengths)

    def loop() -> object:
        with torch.inference_mode():
            return [module(clip[None], clip.new_tensor([clip.shape[0]], dtype=torch.long)) for clip in clips]

    def with_librosa() -> object:
        if feature == "log-mel":
            return [
                np.log(librosa.feature.melspectrogram(y=a, **mel_kwargs) + config.log_offset) for a in arrays
            ]
        return [librosa.feature.mfcc(y=a, n_mfcc=module.n_mfcc, **mel_kwargs) for a in arrays]

    runs = {"batched": batched, "loop": loop, "librosa": with_librosa}
    if knf is not None:
        runs["kaldi-native-fbank"] = lambda: [kaldi_features(feature, a, config) for a in arrays]
    return runs


def kaldi_features(feature: str, audio: np.ndarray, config: FilterbankConfig) -> np.ndarray:
    """Kaldi fbank / MFCC of one utterance with kaldi-native-fbank (no dither)."""
    options = knf.FbankOptions() if feature == "log-mel" else knf.MfccOptions()
    options.frame_opts.dither = 0.0
    options.mel_opts.num_bins = config.n_mels
    extractor = knf.OnlineFbank(options) if feature == "log-mel" else knf.OnlineMfcc(options)
    extractor.accept_waveform(config.sample_rate, audio)
    extractor.input_finished()
    return np.stack([extractor.get_frame(i) for i in range(extractor.num_frames_ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = FilterbankConfig()
    if knf is None:
        print("kaldi-native-fbank is not installed (pip install .[bench]); its column is skipped.")
    print(
        f"{'feature':8} {'batch':>10} {'contender':>19} {'median ms':>10}  ratio to batched: median (min–max)"
    )
    for feature in ("log-mel", "MFCC"):
        for seed, (batch, seconds) in enumerate(SHAPES):
            waveforms, lengths = make_batch(batch, seconds, config.sample_rate, seed)
            times = interleaved(contenders(feature, waveforms, lengths, config), args.repeats)
            reference = np.array(times["batched"])
            for name, seconds_per_call in times.items():
                ratios = np.array(seconds_per_call) / reference
                print(
                    f"{feature:8} {f'{batch}x{seconds:g}s':>10} {name:>19} "
                    f"{1000 * statistics.median(seconds_per_call):10.2f}  "
                    f"{np.median(ratios):.2f} ({ratios.min():.2f}–{ratios.max():.2f})"
                )


if __name__ == "__main__":
    main()
