"""Count the host synchronisations (device → host scalar reads) that a block of code makes."""

from __future__ import annotations

from collections import Counter

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

from speechssl.data.batch import padded_compute

HOST_READS = frozenset(
    {
        torch.ops.aten._local_scalar_dense.default,  # .item(), int(t), float(t), bool(t), .tolist()
        torch.ops.aten.item.default,
        torch.ops.aten.nonzero.default,  # output size depends on the data
        torch.ops.aten.masked_select.default,
        torch.ops.aten.unique_consecutive.default,
        torch.ops.aten._unique2.default,
    }
)


HOST_BUILT = frozenset({torch.ops.aten.lift_fresh.default, torch.ops.aten.lift_fresh_copy.default})


class HostReadCounter(TorchDispatchMode):
    """Counts, by op name, each data-dependent host read dispatched inside the ``with`` block.

    A read of a value computed from Python numbers only (``torch.tensor(n)`` and what is
    computed from it alone, e.g. the frames of a padded length) lives on the host whatever
    the device: it is no device synchronisation and is not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()
        self.host_values = WeakIdKeyDictionary()  # tensors computed from Python numbers only

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        inputs = [value for value in tree_leaves((args, kwargs)) if isinstance(value, torch.Tensor)]
        from_host = bool(inputs) and all(value in self.host_values for value in inputs)
        if func in HOST_READS and not from_host:
            self.reads[str(func)] += 1
        output = func(*args, **(kwargs or {}))
        if func in HOST_BUILT or from_host:
            for value in tree_leaves(output):
                if isinstance(value, torch.Tensor):
                    self.host_values[value] = True
        return output


class TolistCounter(TorchFunctionMode):
    """Counts ``Tensor.tolist`` calls, which read CPU memory without dispatching an aten op."""

    def __init__(self, reads: Counter[str]) -> None:
        super().__init__()
        self.reads = reads

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.tolist:
            self.reads["Tensor.tolist"] += 1
        return func(*args, **(kwargs or {}))


def host_reads(step) -> Counter[str]:
    """The host reads made by ``step()`` (a training step: forward, loss and backward) on the
    path an accelerator takes (``padded_compute``: on the CPU, lengths are free to read
    and the front-ends would skip the work on padding)."""
    with padded_compute(), HostReadCounter() as counter, TolistCounter(counter.reads):
        step()
    return counter.reads


INDEXING = frozenset(
    {
        torch.ops.aten.index.Tensor,
        torch.ops.aten.index_put.default,
        torch.ops.aten.index_put_.default,
        torch.ops.aten._index_put_impl_.default,
    }
)


class ShapeFromDataCounter(TorchDispatchMode):
    """Counts, by op name, the ops whose output shape depends on tensor values: on a GPU each
    waits for the device (``x[bool_mask]``, ``x[bool_mask] = y`` and their backward, ``nonzero``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        boolean_index = func in INDEXING and any(
            isinstance(index, torch.Tensor) and index.dtype == torch.bool for index in args[1]
        )
        if boolean_index or func in HOST_READS - {torch.ops.aten._local_scalar_dense.default}:
            self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def shapes_from_data(step) -> Counter[str]:
    """The ops of ``step()`` whose output shapes depend on tensor values (boolean indexing, ``nonzero``, …)."""
    with padded_compute(), ShapeFromDataCounter() as counter:
        step()
    return counter.ops
