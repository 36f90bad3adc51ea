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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

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


def broadcast_object(value: object) -> object:
    """Rank 0's ``value`` on every rank (any picklable object); ``value`` itself when not distributed."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(value: object) -> list:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank; ``[value]`` when
    not distributed."""
    if not is_distributed():
        return [value]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def launched_rank() -> int:
    """This process's rank as the launcher (``torchrun``) numbered it (``RANK``), whether or not a
    process group is up now; 0 in a plain single process.

    For code that runs after a group was left (e.g. the command line after an evaluation, which
    only rank 0 reports); while a group is up, :func:`rank` is the same number.
    """
    return rank() if is_distributed() else int(os.environ.get("RANK", "0") or 0)


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


def setup_from_env(timeout_s: float | None = None) -> tuple[int, int, int]:
    """Initialise the default process group when launched by ``torchrun``.

    Reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (``MASTER_ADDR``/``MASTER_PORT``
    are read by ``init_method="env://"``). Uses NCCL when CUDA is available (and selects
    GPU ``LOCAL_RANK``), gloo otherwise. Without ``RANK``/``WORLD_SIZE`` in the
    environment it does nothing. Safe to call twice (the first call's timeout stays).

    Args:
        timeout_s: how long any collective waits for the other ranks before it fails
            (``None``: PyTorch's default); gloo and NCCL both honour it.

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
        timeout = None if timeout_s is None else timedelta(seconds=timeout_s)
        dist.init_process_group(
            backend=backend, init_method="env://", rank=global_rank, world_size=size, timeout=timeout
        )
    return global_rank, size, local_rank


class CollectiveTimeoutError(TimeoutError):
    """A collective failed or waited past the process group's timeout (a stalled or dead rank)."""


_SECTION_KEY = "speechssl/section/{rank}"
_sections_entered = 0


def _store() -> dist.Store:
    """The default process group's key-value store (rank 0's, or the launcher's under torchrun)."""
    return dist.distributed_c10d._get_default_store()


def _mark_section(collective: str) -> None:
    """Record in the store how many collective sections this rank has entered, and the last one."""
    global _sections_entered
    _sections_entered += 1
    _store().set(_SECTION_KEY.format(rank=rank()), f"{_sections_entered}\t{collective}")


def _ranks_behind() -> list[str]:
    """The ranks that entered fewer collective sections than this one, each with the last it
    entered (``"rank 1 (last: the loss all-reduce of update 1)"``); empty when the store cannot
    tell (it may live in the stalled process)."""
    try:
        store = _store()
        store.set_timeout(timedelta(seconds=5))
        behind = []
        for other in range(world_size()):
            key = _SECTION_KEY.format(rank=other)
            count, last = store.get(key).decode().split("\t", 1) if store.check([key]) else ("0", "none")
            if int(count) < _sections_entered:
                behind.append(f"rank {other} (last: {last})")
        return behind
    except (RuntimeError, ValueError):
        return []


@contextmanager
def naming_stalls(collective: str) -> Iterator[None]:
    """Turn a distributed failure inside the block into :class:`CollectiveTimeoutError` naming
    this rank, ``collective`` (e.g. ``"the gradient all-reduce of update 7"``) and the ranks
    that had not reached it, so a job whose peer stalled ends with a one-line reason instead of
    a backend traceback.

    Every rank enters the same sequence of sections and records its count in the process
    group's store (one small write per section), so the ranks left behind are the stalled ones.
    """
    if is_distributed():
        _mark_section(collective)
    try:
        yield
    except RuntimeError as err:
        if not (is_distributed() and _is_backend_failure(err)):
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        behind = _ranks_behind()
        stalled = (
            f"stalled: {', '.join(behind)}" if behind else "another rank stalled, died or is unreachable"
        )
        raise CollectiveTimeoutError(
            f"rank {rank()} of {world_size()}: {collective} did not complete ({stalled}; the timeout "
            f"is train.collective_timeout_s): {reason}"
        ) from err


_BACKEND_FAILURES = (
    "Timed out",
    "timed out",
    "Connection closed",
    "Connection reset",
    "gloo",
    "NCCL",
    "ProcessGroup",
)


def _is_backend_failure(err: RuntimeError) -> bool:
    """A failed collective: :class:`torch.distributed.DistError`, or the plain ``RuntimeError``
    that DDP's gradient all-reduce raises with the backend's message (e.g. gloo's
    ``Timed out waiting 2000ms for send operation to complete``)."""
    return isinstance(err, dist.DistError) or any(marker in str(err) for marker in _BACKEND_FAILURES)


def cleanup() -> None:
    """Destroy the default process group if one is initialised; no-op otherwise."""
    if is_distributed():
        dist.destroy_process_group()
