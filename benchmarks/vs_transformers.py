"""Frozen-feature inference of all hidden states, speechssl vs Hugging Face transformers.

Both encoders are built with the same architecture (speechssl's encoder preset on the
wav2vec 2.0 waveform CNN, mapped onto ``transformers.Wav2Vec2Config``); their parameter
counts are printed. The two are timed interleaved (``benchmarks/timing.py``, alternating
which goes first) in one process on one padded batch of utterances of different lengths, and the table gives the median and min-max of the
per-pair ratio speechssl / transformers (below 1: speechssl is faster). Run it with
``OMP_WAIT_POLICY=PASSIVE`` and 2 threads, as the issue 13 measurements were.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/vs_transformers.py [--presets tiny,small] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics

import torch
from timing import interleaved
from transformers import Wav2Vec2Config, Wav2Vec2Model

from speechssl.models.encoder import EncoderConfig, SpeechEncoder, load_encoder_preset

SAMPLE_RATE = 16000


def waveform_config(preset: str) -> EncoderConfig:
    """Encoder preset ``preset`` on the wav2vec 2.0 waveform CNN (512 channels, group norm)."""
    return dataclasses.replace(
        load_encoder_preset(preset), frontend="waveform", conv_channels=512, conv_norm="group"
    )


def transformers_config(config: EncoderConfig) -> Wav2Vec2Config:
    """The ``Wav2Vec2Config`` of the same architecture as ``config``."""
    return Wav2Vec2Config(
        hidden_size=config.dim,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.ffn_dim,
        conv_dim=(config.conv_channels,) * len(config.conv_kernels),
        conv_kernel=config.conv_kernels,
        conv_stride=config.conv_strides,
        conv_bias=config.conv_bias,
        feat_extract_norm=config.conv_norm,
        num_conv_pos_embeddings=config.pos_conv_kernel,
        num_conv_pos_embedding_groups=config.pos_conv_groups,
        mask_time_prob=0.0,
        apply_spec_augment=False,
    )


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.0, 3.0, 2.5, 2.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    generator = torch.Generator().manual_seed(0)
    lengths = torch.tensor([int(seconds * SAMPLE_RATE) for seconds in args.seconds])
    waveforms = torch.randn(len(lengths), int(lengths.max()), generator=generator) * 0.1  # (batch, samples)
    valid = torch.arange(waveforms.shape[1])[None, :] < lengths[:, None]  # (batch, samples)
    waveforms = waveforms * valid

    print(f"## Frozen-feature inference, all hidden states: batch {args.seconds} s, {args.threads} threads\n")
    print("| preset | params speechssl | params transformers | ratio median | min–max |")
    print("|---|---:|---:|---:|---:|")
    for preset in args.presets.split(","):
        config = waveform_config(preset)
        torch.manual_seed(0)
        ours = SpeechEncoder.from_config(config).eval()
        theirs = Wav2Vec2Model(transformers_config(config)).eval()

        run_ours = torch.inference_mode()(functools.partial(ours, waveforms, lengths))
        run_theirs = torch.inference_mode()(
            functools.partial(theirs, waveforms, attention_mask=valid.long(), output_hidden_states=True)
        )
        times = interleaved({"speechssl": run_ours, "transformers": run_theirs}, args.repeats)
        ratios = [ours_s / theirs_s for ours_s, theirs_s in zip(*times.values(), strict=True)]
        print(
            f"| {preset} | {parameter_count(ours):,} | {parameter_count(theirs):,} | "
            f"{statistics.median(ratios):.2f} | {min(ratios):.2f}–{max(ratios):.2f} |"
        )


if __name__ == "__main__":
    main()
