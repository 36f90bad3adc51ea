"""Opt-in, guarded helpers for data-parallel training.

Nothing here starts a process group by itself: :func:`setup_from_env` does so only when
the process was launched by ``torchrun`` (``RANK`` and ``WORLD_SIZE`` in the
environment). Every other helper checks :func:`is_distributed` and falls back to the
single-process meaning (rank 0 of 1, reductions are identities), so the same code runs
in one CPU process without any process group.

Gradient convention of the collectives. :func:`all_reduce_sum` and
:func:`all_gather_cat` are differentiable: the backward pass sums the incoming
gradients over ranks (as ``torch.distributed.nn.functional`` does). When every rank
computes the same loss ``L`` from the reduced tensors (e.g. the Barlow Twins loss on
the global batch), each rank therefore holds ``world_size · ∂L/∂x_local``, and
``DistributedDataParallel``'s gradient *averaging* turns that into exactly ``∂L/∂θ``
of the global loss.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.autograd import Function


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised in this process."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """Global rank of this process; 0 when not distributed."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes; 1 when not distributed."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """True on rank 0 (and always in a single process): the one that logs and saves."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank; no-op when not distributed."""
    if is_distributed():
        dist.barrier()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. whether it failed); ``flag`` itself when not distributed."""
    if not is_distributed():
        return flag
    value = torch.tensor([int(flag)], dtype=torch.long)
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.broadcast(value, src=0)
    return bool(value.item())


class _AllReduceSum(Function):
    """Sum over ranks; backward sums the gradients over ranks too."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        reduced = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class _AllGatherCat(Function):
    """Concatenate every rank's tensor along ``dim``; backward sums gradients over ranks
    and returns this rank's slice."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, dim: int, sizes: list[int]) -> torch.Tensor:
        ctx.dim = dim
        ctx.sizes = sizes
        padded_shape = list(tensor.shape)
        padded_shape[dim] = max(sizes)
        padded = tensor.new_zeros(padded_shape)
        padded.narrow(dim, 0, tensor.shape[dim]).copy_(tensor)
        gathered = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(gathered, padded)
        return torch.cat(
            [part.narrow(dim, 0, size) for part, size in zip(gathered, sizes, strict=True)], dim=dim
        )

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        grad = grad_output.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: dist.get_rank()])
        return grad.narrow(ctx.dim, start, ctx.sizes[dist.get_rank()]), None, None


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise sum of ``tensor`` over all ranks, differentiable; identity when not
    distributed.

    Args:
        tensor: any shape, identical on every rank.

    Returns:
        A new tensor of the same shape holding the sum (``tensor`` itself is not
        modified). Gradients flow back to every rank's input (summed over ranks; see the
        module docstring).
    """
    if not is_distributed():
        return tensor
    return _AllReduceSum.apply(tensor)


def all_gather_cat(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Concatenation of every rank's ``tensor`` along ``dim`` in rank order, differentiable;
    identity when not distributed.

    Args:
        tensor: any shape; ranks may differ in size along ``dim`` (e.g. a smaller last
            batch) but must agree on every other dimension.
        dim: the dimension to concatenate along.

    Returns:
        ``tensor`` of every rank concatenated, e.g. ``(batch, dim)`` per rank →
        ``(global_batch, dim)``.

    Raises:
        ValueError: if ranks disagree on the number of dimensions or on a dimension other
            than ``dim`` (message names every rank's shape).
    """
    if not is_distributed():
        return tensor
    dim = dim % tensor.dim()
    max_ndim = torch.tensor([tensor.dim()], dtype=torch.long, device=tensor.device)
    dist.all_reduce(max_ndim, op=dist.ReduceOp.MAX)
    # (1 + max_ndim,): this rank's ndim, then its shape, padded with -1
    encoded = torch.full((1 + int(max_ndim),), -1, dtype=torch.long, device=tensor.device)
    encoded[0] = tensor.dim()
    encoded[1 : 1 + tensor.dim()] = torch.tensor(tensor.shape, dtype=torch.long)
    gathered = [torch.empty_like(encoded) for _ in range(world_size())]
    dist.all_gather(gathered, encoded)
    found = [tuple(int(s) for s in item[1 : 1 + int(item[0])]) for item in gathered]
    if (
        any(len(shp) != tensor.dim() for shp in found)
        or len({shp[:dim] + shp[dim + 1 :] for shp in found}) != 1
    ):
        raise ValueError(
            f"all_gather_cat along dim {dim}: expected every rank's shape to agree except along dim {dim}, "
            f"found {found}"
        )
    return _AllGatherCat.apply(tensor, dim, [shp[dim] for shp in found])


def setup_from_env() -> tuple[int, int, int]:
    """Initialise the default process group when launched by ``torchrun``.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (``MASTER_ADDR``/``MASTER_PORT``
    are read by ``init_method="env://"``). Uses NCCL when CUDA is available (and selects
    GPU ``LOCAL_RANK``), gloo otherwise. Without ``RANK``/``WORLD_SIZE`` in the
    environment it does nothing. Safe to call twice.

    Returns:
        ``(rank, world_size, local_rank)``; ``(0, 1, 0)`` in a plain single process.

    Raises:
        ValueError: if the environment variables are not integers or are inconsistent.
        RuntimeError: if this PyTorch build has no ``torch.distributed``.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    values = {}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        raw = os.environ.get(name, "0")
        try:
            values[name] = int(raw)
        except ValueError as err:
            raise ValueError(f"environment variable {name}: expected an integer, found {raw!r}") from err
    global_rank, size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if size < 1 or not 0 <= global_rank < size:
        raise ValueError(
            f"expected WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE, found RANK={global_rank}, WORLD_SIZE={size}"
        )
    if not dist.is_available():
        raise RuntimeError(
            "launched with RANK/WORLD_SIZE set, but this PyTorch build has no torch.distributed"
        )
    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            backend = "nccl"
        else:
            backend = "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=global_rank, world_size=size)
    return global_rank, size, local_rank


def cleanup() -> None:
    """Destroy the default process group if one is initialised; no-op otherwise."""
    if is_distributed():
        dist.destroy_process_group()
