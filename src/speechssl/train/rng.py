"""Seeding and snapshots of every random number generator training draws from.

Exact resumption needs the generators back in the state they had when a checkpoint was
written: Python's :mod:`random`, NumPy's legacy global generator, torch's CPU generator
and, when CUDA is initialised, one generator per GPU. Snapshots hold only lists, ints and
tensors so that ``torch.load(..., weights_only=True)`` can read them back.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms(enabled: bool) -> Iterator[None]:
    """Inside the block, with ``enabled``, torch computes bit-reproducibly run to run; the
    previous settings come back on exit. Without ``enabled`` nothing changes.

    Deterministic algorithms only (an op without one raises), cuDNN deterministic and not
    benchmarking, ``CUBLAS_WORKSPACE_CONFIG`` for cuBLAS (read when CUDA first starts), and
    oneDNN (mkldnn) off: its CPU convolution backward sums partial gradients in an order
    that depends on thread scheduling, so wav2vec 2.0's waveform encoder differs run to run
    with two or more threads. CPU convolutions then use PyTorch's own kernels (slower).
    """
    if not enabled:
        yield
        return
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.mkldnn.enabled,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        torch.backends.mkldnn.enabled = saved[4]


def capture_rng_state() -> dict[str, Any]:
    """A snapshot of every global generator, restorable with :func:`restore_rng_state`."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)],
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put every global generator back into the state captured by :func:`capture_rng_state`.

    Raises:
        ValueError: the snapshot holds CUDA states for a different number of devices.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) != torch.cuda.device_count():
            raise ValueError(
                f"checkpoint RNG state: expected CUDA states for {torch.cuda.device_count()} devices, "
                f"found {len(state['cuda'])}"
            )
        torch.cuda.set_rng_state_all(state["cuda"])
