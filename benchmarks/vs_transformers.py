"""speechssl vs Hugging Face transformers: pretraining steps and frozen-feature inference.

Rows (``benchmarks/same_architecture.py`` builds both sides with the same architecture; the
table prints both parameter counts):

* ``wav2vec 2.0 training``: speechssl's ``wav2vec2`` method vs ``Wav2Vec2ForPreTraining``,
  forward + backward + AdamW step, the mask and distractors drawn inside the step;
* ``HuBERT training``: speechssl's ``hubert`` method vs ``HubertModel`` plus HuBERT's head
  (projection, unit embeddings, cosine logits / τ, cross-entropy at the masked frames), both
  labelling the batch with the same frozen MFCC tokenizer (random centroids, 20 ms);
* ``inference``: every hidden state of the encoder vs ``Wav2Vec2Model(output_hidden_states=True)``
  under ``torch.inference_mode``.

Encoders are the presets on wav2vec 2.0's waveform CNN; the objectives are the shipped
``<method>_tiny`` config for tiny and ``<method>_base`` above. The contenders are timed
interleaved (``benchmarks/timing.py``, alternating which goes first) in one process on one
padded batch of utterances of different lengths; the table gives the median and min–max
of the per-round ratio speechssl / transformers (below 1: speechssl is faster). Run it with
``OMP_WAIT_POLICY=PASSIVE`` and 2 threads, as the issue 13 measurements were:

    OMP_WAIT_POLICY=PASSIVE python benchmarks/vs_transformers.py [--train-presets tiny,small]
        [--inference-presets tiny,small,base] [--repeats 5] [--padded-compute]

On the CPU speechssl's front-end skips the work on padding (``data.batch.host_lengths``);
``--padded-compute`` times the path an accelerator takes instead (every utterance at the
padded length, as transformers computes it), separating that saving from the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
from pathlib import Path

import torch
from same_architecture import (
    padded_batch,
    parameter_count,
    sample_attention_mask,
    training_contenders,
    transformers_kwargs,
    waveform_config,
)
from timing import interleaved
from transformers import Wav2Vec2Config, Wav2Vec2Model

from speechssl.data.batch import padded_compute
from speechssl.models.encoder import SpeechEncoder

TRAINING_ROWS = {"wav2vec 2.0 training": "wav2vec2", "HuBERT training": "hubert"}


def table_row(row: str, preset: str, ours: torch.nn.Module, theirs: torch.nn.Module, times: dict) -> str:
    """One Markdown row: parameter counts and the ratios of the paired times (speechssl first)."""
    ratios = [
        ours_s / theirs_s for ours_s, theirs_s in zip(times["speechssl"], times["transformers"], strict=True)
    ]
    return (
        f"| {row} | {preset} | {parameter_count(ours):,} / {parameter_count(theirs):,} | "
        f"{statistics.median(ratios):.2f} | {min(ratios):.2f}–{max(ratios):.2f} |"
    )


def inference_row(preset: str, batch, repeats: int) -> str:
    config = waveform_config(preset)
    torch.manual_seed(0)
    ours = SpeechEncoder.from_config(config).eval()
    theirs = Wav2Vec2Model(
        Wav2Vec2Config(**transformers_kwargs(config), mask_time_prob=0.0, apply_spec_augment=False)
    ).eval()
    runs = {
        "speechssl": torch.inference_mode()(functools.partial(ours, batch.waveforms, batch.lengths)),
        "transformers": torch.inference_mode()(
            functools.partial(
                theirs,
                batch.waveforms,
                attention_mask=sample_attention_mask(batch),
                output_hidden_states=True,
            )
        ),
    }
    return table_row("inference", preset, ours, theirs, interleaved(runs, repeats))


def training_row(row: str, preset: str, batch, repeats: int, units_dir: Path) -> str:
    ours, theirs = training_contenders(TRAINING_ROWS[row], preset, batch, units_dir)
    times = interleaved({ours.name: ours.step, theirs.name: theirs.step}, repeats)
    return table_row(row, preset, ours.module, theirs.module, times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-presets", default="tiny,small", help="comma-separated; empty for none")
    parser.add_argument(
        "--inference-presets", default="tiny,small,base", help="comma-separated; empty for none"
    )
    parser.add_argument("--seconds", type=float, nargs="+", default=[4.0, 3.0, 2.5, 2.0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--padded-compute", action="store_true", help="speechssl computes padding too, as on an accelerator"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = padded_batch(args.seconds)

    path = ", padded compute" if args.padded_compute else ""
    print(f"## speechssl ÷ transformers wall time: batch {args.seconds} s, {args.threads} threads{path}\n")
    print("| row | preset | params (speechssl / transformers) | ratio median | min–max |")
    print("|---|---|---:|---:|---:|")
    context = padded_compute() if args.padded_compute else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as scratch, context:
        for row in TRAINING_ROWS:
            for preset in filter(None, args.train_presets.split(",")):
                print(training_row(row, preset, batch, args.repeats, Path(scratch) / "units"), flush=True)
        for preset in filter(None, args.inference_presets.split(",")):
            print(inference_row(preset, batch, args.repeats), flush=True)


if __name__ == "__main__":
    main()
