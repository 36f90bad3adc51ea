"""CTC head BiLSTM: packed sequences vs the dense reversed-direction layout, side by side.

Both compute a bidirectional LSTM in which padding never reaches a valid output. The packed
one is ``nn.LSTM(bidirectional=True)`` on a ``PackedSequence``; the dense one is
:class:`speechssl.downstream.heads.CTCHead`'s layout (two unidirectional LSTMs per layer, the
backward one reading each utterance reversed within its length). Times are forward +
backward of one batch shaped like Mini LibriSpeech after 4x frame stacking (16 utterances of
up to 12.5 s at 25 Hz, 320-dimensional), medians over repeats.

    python benchmarks/ctc_head.py [--batch 16] [--frames 312] [--dim 320] [--hidden 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechssl.downstream.heads import CTCHead


def _median_seconds(step, repeats: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=312)
    parser.add_argument("--dim", type=int, default=320)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.frames, args.dim, generator=generator)  # (batch, frames, dim)
    lengths = torch.randint(args.frames // 4, args.frames + 1, (args.batch,), generator=generator)
    lengths[0] = args.frames
    packed_lstm = nn.LSTM(args.dim, args.hidden, num_layers=2, batch_first=True, bidirectional=True)
    head = CTCHead(args.dim, vocab_size=30, hidden=args.hidden, num_layers=2)

    def packed() -> None:
        sequence = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        hidden, _ = pad_packed_sequence(packed_lstm(sequence)[0], batch_first=True)
        hidden.sum().backward()

    def dense() -> None:
        log_probs, _ = head(x, lengths)
        log_probs.sum().backward()

    seconds = {"packed nn.LSTM(bidirectional)": _median_seconds(packed, args.repeats)}
    seconds["CTCHead dense, reversed backward"] = _median_seconds(dense, args.repeats)
    reference = seconds["packed nn.LSTM(bidirectional)"]
    print(
        f"## BiLSTM forward + backward: batch {args.batch}, {args.frames} frames, dim {args.dim}, "
        f"hidden {args.hidden}, {torch.get_num_threads()} threads\n"
    )
    print("| layout | median s per batch | speed-up |")
    print("|---|---:|---:|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {reference / value:.1f}× |")


if __name__ == "__main__":
    main()
