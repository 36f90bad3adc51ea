"""Real multi-process gloo runs for tests, started the way ``torchrun`` starts them.

:func:`spawn_ranks` runs ``worker(rank, world_size, *args)`` in ``world_size`` fresh
processes whose environment is what ``torchrun`` gives its workers (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``, one thread each), so a
worker joins the group with :func:`speechssl.distributed.setup_from_env` exactly as the
command line does.

The rendezvous has no free-port race. Choosing a free port, closing it and letting rank 0
bind it again later leaves a window in which another process (another test run on the same
machine) can take the port. Here the test process itself opens the TCP store on a port the
operating system picks and keeps it open for the whole run; the ranks connect to it as
clients, as torchrun's workers connect to their agent's store
(``TORCHELASTIC_USE_AGENT_STORE``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.multiprocessing as mp
from torch.distributed import TCPStore

HOST = "127.0.0.1"


@contextmanager
def rendezvous(timeout_s: float = 120.0) -> Iterator[dict[str, str]]:
    """Hold an ``env://`` rendezvous store open; yields the environment variables that point ranks at it."""
    store = TCPStore(HOST, 0, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=timeout_s))
    try:
        yield {"MASTER_ADDR": HOST, "MASTER_PORT": str(store.port), "TORCHELASTIC_USE_AGENT_STORE": "True"}
    finally:
        del store


def _run_rank(
    rank: int, worker: Callable[..., None], world_size: int, env: dict[str, str], args: tuple
) -> None:
    os.environ.update(
        env, RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1"
    )
    torch.set_num_threads(1)
    worker(rank, world_size, *args)


def spawn_ranks(worker: Callable[..., None], *args: object, world_size: int = 2) -> None:
    """Run ``worker(rank, world_size, *args)`` on ``world_size`` processes and wait for all of them.

    ``worker`` must be a module-level function (it is pickled by name) and join the process
    group itself (``distributed.setup_from_env()``, then ``distributed.cleanup()``). An
    exception in any rank fails the call.
    """
    with rendezvous() as env:
        mp.spawn(_run_rank, args=(worker, world_size, env, args), nprocs=world_size, join=True)
