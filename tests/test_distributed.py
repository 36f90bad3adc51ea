"""Distributed helpers: single-process fallbacks, torchrun-style setup, and two real gloo ranks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from distributed_helpers import rendezvous, spawn_ranks

from speechssl import distributed


@pytest.fixture
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def test_single_process_fallbacks(no_launcher_env: None) -> None:
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main_process()) == (0, 1, True)
    assert distributed.setup_from_env() == (0, 1, 0)
    assert not distributed.is_distributed()
    distributed.barrier()
    distributed.cleanup()


def test_collectives_are_differentiable_identities_in_one_process() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    reduced = distributed.all_reduce_sum(x)
    gathered = distributed.all_gather_cat(x, dim=1)
    torch.testing.assert_close(reduced, x)
    torch.testing.assert_close(gathered, x)
    (reduced.sum() + 2 * gathered.sum()).backward()
    torch.testing.assert_close(x.grad, torch.full((3, 2), 3.0))


def test_setup_from_env_initialises_gloo_and_cleans_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with rendezvous() as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _setup_twice_and_reduce()
    assert not distributed.is_distributed()


def test_rendezvous_port_stays_taken_until_the_run_ends() -> None:
    """The spawn helper's store holds its port, so no other process can take it before the ranks connect."""
    with rendezvous() as env, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as intruder:
        with pytest.raises(OSError):
            intruder.bind((env["MASTER_ADDR"], int(env["MASTER_PORT"])))
        assert env["TORCHELASTIC_USE_AGENT_STORE"] == "True"


def _setup_twice_and_reduce() -> None:
    try:
        assert distributed.setup_from_env() == (0, 1, 0)
        assert distributed.is_distributed()
        assert torch.distributed.get_backend() == ("nccl" if torch.cuda.is_available() else "gloo")
        assert distributed.setup_from_env() == (0, 1, 0)  # idempotent
        x = torch.arange(3.0, requires_grad=True)
        y = distributed.all_reduce_sum(x)
        assert y is not x
        torch.testing.assert_close(y, x.detach())
        y.sum().backward()
        torch.testing.assert_close(x.grad, torch.ones(3))
    finally:
        distributed.cleanup()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "zero", "WORLD_SIZE": "2"}, "RANK: expected an integer, found 'zero'"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "found RANK=2, WORLD_SIZE=2"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "found RANK=0, WORLD_SIZE=0"),
    ],
)
def test_setup_from_env_rejects_bad_environment(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        distributed.setup_from_env()
    assert not distributed.is_distributed()


def _collectives_worker(rank: int, world: int, out: Path) -> None:
    distributed.setup_from_env()
    try:
        weights = torch.arange(1.0, 6.0)[:, None] * torch.tensor([1.0, -2.0])  # (5, 2), same on every rank
        rows = [2, 3][rank]  # unequal batches: ranks hold rows 0..1 and 2..4
        x = torch.full((rows, 2), float(rank + 1), requires_grad=True)
        gathered = distributed.all_gather_cat(x)
        reduced = distributed.all_reduce_sum(x[:1])
        ((gathered * weights).sum() + (reduced * weights[:1]).sum()).backward()
        try:
            distributed.all_gather_cat(torch.zeros(2, 3 + rank))
            mismatch = ""
        except ValueError as err:
            mismatch = str(err)
        torch.save(
            {
                "rank": distributed.rank(),
                "world_size": distributed.world_size(),
                "main": distributed.is_main_process(),
                "gathered": gathered.detach(),
                "reduced": reduced.detach(),
                "grad": x.grad,
                "mismatch": mismatch,
            },
            out / f"{rank}.pt",
        )
        distributed.barrier()
    finally:
        distributed.cleanup()


@pytest.mark.timeout(120)
def test_collectives_across_two_gloo_ranks(tmp_path: Path) -> None:
    world = 2
    spawn_ranks(_collectives_worker, tmp_path, world_size=world)
    results = [torch.load(tmp_path / f"{r}.pt") for r in range(world)]
    weights = torch.arange(1.0, 6.0)[:, None] * torch.tensor([1.0, -2.0])
    expected_gather = torch.cat([torch.full((2, 2), 1.0), torch.full((3, 2), 2.0)])
    for r, result in enumerate(results):
        assert (result["rank"], result["world_size"], result["main"]) == (r, world, r == 0)
        torch.testing.assert_close(result["gathered"], expected_gather)
        torch.testing.assert_close(result["reduced"], torch.full((1, 2), 3.0))
        assert "found [(2, 3), (2, 4)]" in result["mismatch"]
    # Backward sums the gradients of every rank's (identical) loss: world × the single-loss gradient.
    own_rows = [weights[:2], weights[2:]]
    for r, result in enumerate(results):
        expected = world * own_rows[r]
        expected[0] += world * weights[0]
        torch.testing.assert_close(result["grad"], expected)
