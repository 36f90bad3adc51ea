"""Barlow Twins: the loss (reference, hand case, properties, gradients, errors, DDP) and the method."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed_helpers import spawn_ranks
from torch import nn

from speechssl import distributed
from speechssl.augment import AddNoise, FrequencyMask, Gain, TimeMask, ViewConfig
from speechssl.config import ConfigError
from speechssl.data.batch import AudioBatch, lengths_to_padding_mask
from speechssl.methods import build_method, method_config
from speechssl.methods.barlow_twins import (
    BarlowTwins,
    BarlowTwinsConfig,
    BarlowTwinsLoss,
    cross_correlation,
    off_diagonal,
)
from speechssl.methods.vicreg import VICRegLoss
from speechssl.models import SpeechEncoder, load_encoder_preset


def numpy_barlow_twins(z_a: np.ndarray, z_b: np.ndarray, lambda_: float, eps: float) -> float:
    """Independent float64 reference of Zbontar et al. 2021, eq. 1 (loops, no torch)."""
    n, d = z_a.shape

    def standardise(z: np.ndarray) -> np.ndarray:
        return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + eps)

    a, b = standardise(z_a), standardise(z_b)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c_ij = float(np.dot(a[:, i], b[:, j])) / n
            loss += (1.0 - c_ij) ** 2 if i == j else lambda_ * c_ij**2
    return loss


def hadamard(order: int) -> torch.Tensor:
    """Sylvester Hadamard matrix ``(order, order)`` of ±1 with orthogonal columns."""
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < order:
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)])
    return h


def random_pair(seed: int, batch: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    z_a = torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    z_b = 0.7 * z_a + torch.randn(batch, dim, generator=generator, dtype=torch.float64)
    return z_a, z_b


class TestBarlowTwinsLoss:
    def test_identity_cross_correlation_gives_zero(self) -> None:
        # Columns 1..7 of an 8x8 Hadamard matrix: zero mean, unit variance, mutually orthogonal.
        z = hadamard(8)[:, 1:]
        out = BarlowTwinsLoss(eps=0.0)(z, z)
        torch.testing.assert_close(out.cross_correlation, torch.eye(7, dtype=torch.float64))
        assert float(out.loss) == pytest.approx(0.0, abs=1e-12)
        assert float(BarlowTwinsLoss()(z, z).loss) < 1e-9  # the default eps barely moves it

    def test_hand_computed_case(self) -> None:
        # Standardised columns: a = √2·[[1,0],[-1,0],[0,1],[0,-1]], b = [[1,1],[-1,-1],[1,-1],[-1,1]], so
        # C = aᵀb / 4 = [[√2/2, √2/2], [√2/2, -√2/2]] and
        # L = (1 - √2/2)² + (1 + √2/2)² + λ (1/2 + 1/2) = 3 + λ.
        z_a = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
        z_b = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])
        half = math.sqrt(2) / 2
        out = BarlowTwinsLoss(lambda_=5e-3, eps=0.0)(z_a, z_b)
        torch.testing.assert_close(out.cross_correlation, torch.tensor([[half, half], [half, -half]]))
        assert float(out.invariance) == pytest.approx(3.0, abs=1e-6)
        assert float(out.redundancy) == pytest.approx(1.0, abs=1e-6)
        assert float(out.loss) == pytest.approx(3.005, abs=1e-6)
        assert float(BarlowTwinsLoss(lambda_=5e-3, scale_loss=0.5, eps=0.0)(z_a, z_b).loss) == pytest.approx(
            1.5025, abs=1e-6
        )

    @pytest.mark.parametrize("seed", range(8))
    def test_matches_numpy_reference(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        batch, dim = (int(v) for v in torch.randint(2, 12, (2,), generator=generator))
        z_a, z_b = random_pair(seed, batch, dim)
        lambda_ = 0.0051
        expected = numpy_barlow_twins(z_a.numpy(), z_b.numpy(), lambda_, 1e-5)
        assert float(BarlowTwinsLoss(lambda_=lambda_)(z_a, z_b).loss) == pytest.approx(expected, rel=1e-10)
        assert float(BarlowTwinsLoss(lambda_=lambda_)(z_a.float(), z_b.float()).loss) == pytest.approx(
            expected, rel=1e-4
        )

    @pytest.mark.parametrize("seed", range(8))
    def test_properties_nonnegative_affine_invariant_symmetric(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(1000 + seed)
        batch, dim = (int(v) for v in torch.randint(2, 16, (2,), generator=generator))
        z_a, z_b = random_pair(seed, batch, dim)
        loss = BarlowTwinsLoss(eps=0.0)
        value = loss(z_a, z_b).loss
        assert float(value) >= 0.0
        scale = torch.exp(torch.randn(dim, generator=generator, dtype=torch.float64))
        shift = 10 * torch.randn(dim, generator=generator, dtype=torch.float64)
        torch.testing.assert_close(loss(z_a * scale + shift, z_b).loss, value)
        torch.testing.assert_close(loss(z_a, z_b * scale - shift).loss, value)
        torch.testing.assert_close(loss(z_b, z_a).loss, value)
        c = loss(z_a, z_b).cross_correlation
        assert bool((c.abs() <= 1 + 1e-12).all())

    def test_gradcheck_float64(self) -> None:
        z_a, z_b = random_pair(0, 5, 3)
        z_a.requires_grad_(True)
        z_b.requires_grad_(True)
        loss = BarlowTwinsLoss(lambda_=0.1)
        assert torch.autograd.gradcheck(lambda a, b: loss(a, b).loss, (z_a, z_b))

    def test_off_diagonal(self) -> None:
        m = torch.arange(9.0).view(3, 3)
        assert off_diagonal(m).tolist() == [1.0, 2.0, 3.0, 5.0, 6.0, 7.0]
        with pytest.raises(ValueError, match=r"expected a square matrix, found shape \(2, 3\)"):
            off_diagonal(torch.zeros(2, 3))

    def test_error_paths(self) -> None:
        loss = BarlowTwinsLoss()
        with pytest.raises(ValueError, match=r"at least 2 rows, found 1 on each of 1 rank"):
            loss(torch.randn(1, 4), torch.randn(1, 4))
        with pytest.raises(ValueError, match=r"equal shape \(batch, dim\), found \(4, 3\) and \(4, 2\)"):
            loss(torch.randn(4, 3), torch.randn(4, 2))
        with pytest.raises(ValueError, match=r"found \(4,\) and \(4,\)"):
            cross_correlation(torch.randn(4), torch.randn(4))
        with pytest.raises(ValueError, match="lambda_: expected >= 0, found -1"):
            BarlowTwinsLoss(lambda_=-1)
        with pytest.raises(ValueError, match="scale_loss: expected > 0, found 0"):
            BarlowTwinsLoss(scale_loss=0)

    def test_computes_in_float32_under_low_precision(self) -> None:
        z_a, z_b = random_pair(3, 8, 4)
        out = BarlowTwinsLoss()(z_a.bfloat16(), z_b.bfloat16())
        assert out.loss.dtype == torch.float32
        assert float(out.loss) == pytest.approx(float(BarlowTwinsLoss()(z_a, z_b).loss), rel=0.05)


SPLIT = [5, 3]  # unequal local batches: the reductions are sums, so any split works


def projector_and_inputs() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    projector = nn.Linear(6, 4).double()
    x_a, x_b = random_pair(11, sum(SPLIT), 6)
    return projector, x_a, x_b


LOSSES = {
    "barlow_twins": lambda **kw: BarlowTwinsLoss(lambda_=0.1, **kw),
    "modified_barlow_twins": lambda **kw: BarlowTwinsLoss(lambda_=0.1, normalize_latents=True, **kw),
    "vicreg": lambda **kw: VICRegLoss(**kw),
}


def _ddp_worker(rank: int, world: int, out: Path) -> None:
    """Every loss of :data:`LOSSES` in one process group (one spawn for all of them)."""
    distributed.setup_from_env()
    try:
        for loss_name in sorted(LOSSES):
            projector, x_a, x_b = projector_and_inputs()
            model = nn.parallel.DistributedDataParallel(projector)
            start = sum(SPLIT[:rank])
            rows = slice(start, start + SPLIT[rank])
            z_a = x_a[rows].clone().requires_grad_(True)
            z_b = x_b[rows].clone().requires_grad_(True)
            loss_fn = LOSSES[loss_name]()
            loss = loss_fn(z_a, z_b).loss
            loss.backward()
            projected = loss_fn(model(x_a[rows]), model(x_b[rows])).loss
            projected.backward()
            torch.save(
                {
                    "loss": loss.detach(),
                    "grad_a": z_a.grad,
                    "grad_b": z_b.grad,
                    "projected": projected.detach(),
                    "weight_grad": model.module.weight.grad,
                    "bias_grad": model.module.bias.grad,
                    "local_only": LOSSES[loss_name](gather_distributed=False)(z_a, z_b).loss.detach(),
                },
                out / f"{loss_name}_{rank}.pt",
            )
        distributed.barrier()  # no rank tears the group down while another still communicates
    finally:
        distributed.cleanup()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, torch.Tensor]]]:
    """``{loss name: [rank 0's results, rank 1's]}`` of one two-rank gloo run."""
    out = tmp_path_factory.mktemp("ddp")
    spawn_ranks(_ddp_worker, out, world_size=len(SPLIT))
    return {name: [torch.load(out / f"{name}_{r}.pt") for r in range(len(SPLIT))] for name in LOSSES}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_ddp_loss_and_gradients_equal_single_process_full_batch(
    ddp_results: dict[str, list[dict[str, torch.Tensor]]], loss_name: str
) -> None:
    world = len(SPLIT)
    results = ddp_results[loss_name]

    projector, x_a, x_b = projector_and_inputs()
    z_a, z_b = x_a.clone().requires_grad_(True), x_b.clone().requires_grad_(True)
    loss_fn = LOSSES[loss_name]()
    loss = loss_fn(z_a, z_b).loss
    loss.backward()
    projected = loss_fn(projector(x_a), projector(x_b)).loss
    projected.backward()

    start = 0
    for r, result in enumerate(results):
        rows = slice(start, start + SPLIT[r])
        start += SPLIT[r]
        torch.testing.assert_close(result["loss"], loss.detach())
        torch.testing.assert_close(result["projected"], projected.detach())
        # Every rank back-propagates the same global loss, so the reduction's backward sums world
        # copies of ∂L/∂z; DDP's gradient averaging divides them out again (next assertion).
        torch.testing.assert_close(result["grad_a"] / world, z_a.grad[rows])
        torch.testing.assert_close(result["grad_b"] / world, z_b.grad[rows])
        torch.testing.assert_close(result["weight_grad"], projector.weight.grad)
        torch.testing.assert_close(result["bias_grad"], projector.bias.grad)
        local = LOSSES[loss_name]()(x_a[rows], x_b[rows]).loss
        torch.testing.assert_close(result["local_only"], local)
        assert not torch.allclose(result["local_only"], loss.detach())


def tiny_encoder(dropout: float = 0.1) -> SpeechEncoder:
    config = dataclasses.replace(load_encoder_preset("tiny"), dropout=dropout, attention_dropout=dropout)
    return SpeechEncoder.from_config(config)


def audio_batch(lengths: list[int], seed: int = 0) -> AudioBatch:
    generator = torch.Generator().manual_seed(seed)
    lengths_t = torch.tensor(lengths)
    t = torch.arange(max(lengths)) / 16000
    pitch = 100 + 300 * torch.rand(len(lengths), 1, generator=generator)
    waveforms = torch.sin(2 * math.pi * pitch * t) + 0.1 * torch.randn(
        len(lengths), max(lengths), generator=generator
    )
    waveforms = waveforms.masked_fill(lengths_to_padding_mask(lengths_t), 0.0)
    return AudioBatch(waveforms, lengths_t, [f"utt{i}" for i in range(len(lengths))])


def small_config(**overrides) -> BarlowTwinsConfig:
    return BarlowTwinsConfig(**{"projector": [64, 32], "view": ViewConfig(crop_seconds=0.5), **overrides})


class TestBarlowTwinsMethod:
    def test_forward_returns_finite_loss_metrics_and_gradients(self) -> None:
        method = BarlowTwins(tiny_encoder(), small_config(), generator=torch.Generator().manual_seed(0))
        out = method(audio_batch([12000, 8000, 5000, 9000]))
        assert out.loss.dim() == 0 and torch.isfinite(out.loss)
        assert set(out.metrics) == {
            "invariance", "redundancy", "on_diagonal_mean", "off_diagonal_abs_mean",
            "embedding_std", "effective_rank", "collapsed",
        }  # fmt: skip
        assert all(torch.isfinite(torch.as_tensor(v)) for v in out.metrics.values())
        assert -1.0 <= float(out.metrics["on_diagonal_mean"]) <= 1.0
        out.loss.backward()
        encoder_grads = [p.grad for p in method.encoder.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in encoder_grads)

    def test_collapse_is_checked_every_warn_every_updates_outside_the_step(self, caplog) -> None:
        method = BarlowTwins(tiny_encoder(), small_config(), generator=torch.Generator().manual_seed(0))
        method.monitor.warn_every = 2
        method(audio_batch([8000, 6000, 7000]))
        method.collapse = {**method.collapse, "collapsed": torch.tensor(1.0)}  # as if the batch collapsed
        with caplog.at_level(logging.WARNING, logger="speechssl.methods.collapse"):
            for step in range(1, 6):
                method.on_step_end(step, 5)
        assert len([r for r in caplog.records if "representation collapse" in r.message]) == 2  # steps 2, 4

    def test_optimizer_steps_lower_the_loss_on_a_fixed_batch(self) -> None:
        torch.manual_seed(0)
        method = BarlowTwins(tiny_encoder(dropout=0.0), small_config())
        batch = audio_batch([8000, 8000, 6000, 7000, 8000, 5000, 8000, 7500])

        def fixed_views_loss() -> float:
            method.generator = torch.Generator().manual_seed(123)
            with torch.no_grad():
                return float(method(batch).loss)

        before = fixed_views_loss()
        optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
        method.generator = torch.Generator().manual_seed(0)
        for _ in range(8):
            optimizer.zero_grad()
            method(batch).loss.backward()
            optimizer.step()
        assert fixed_views_loss() < 0.9 * before

    def test_embed_is_unaugmented_and_deterministic(self) -> None:
        method = BarlowTwins(tiny_encoder(), small_config()).eval()
        batch = audio_batch([6000, 4000, 3000])
        first = method.embed(batch.waveforms, batch.lengths)
        second = method.embed(batch.waveforms, batch.lengths)
        assert first.shape == (3, 32)
        assert not first.requires_grad
        torch.testing.assert_close(first, second)

    def test_layer_selects_the_pooled_hidden_state(self) -> None:
        encoder = tiny_encoder()
        batch = audio_batch([6000, 4000])
        method = BarlowTwins(encoder, small_config(layer=0), generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(method(batch).loss)
        bad = BarlowTwins(encoder, small_config(layer=encoder.num_layers))
        with pytest.raises(
            ValueError, match=rf"{encoder.num_layers} hidden states .* found {encoder.num_layers}"
        ):
            bad(batch)

    def test_registry_builds_from_mapping_and_config_errors_name_the_key(self) -> None:
        config = method_config(
            "barlow_twins", {"projector": [16, 8], "lambda_": 0.0051, "view": {"crop_seconds": 0.25}}
        )
        assert config.view.crop_seconds == 0.25
        method = build_method("barlow_twins", config, tiny_encoder())
        assert isinstance(method, BarlowTwins)
        assert method.loss.lambda_ == 0.0051
        assert method.projector(torch.randn(3, method.encoder.dim)).shape == (3, 8)
        with pytest.raises(
            ConfigError, match=r"projector: expected a non-empty list of positive widths, found \[\]"
        ):
            method_config("barlow_twins", {"projector": []})
        with pytest.raises(ConfigError, match="lambda_: expected float, found 'big'"):
            method_config("barlow_twins", {"lambda_": "big"})
        with pytest.raises(ConfigError, match=r"objective.view.noise: p: expected a probability in \[0, 1\]"):
            method_config("barlow_twins", {"view": {"noise": {"p": 3.0}}})
        with pytest.raises(ConfigError, match="level: 'frame' pairs the two views frame by frame"):
            method_config("barlow_twins", {"level": "frame", "view": {"speed": {"p": 0.5}}})


class TestLossVariants:
    def test_modified_barlow_twins_ignores_the_scale_of_each_embedding(self) -> None:
        z_a, z_b = random_pair(5, 16, 6)
        scales = torch.rand(16, 1, generator=torch.Generator().manual_seed(1), dtype=z_a.dtype) * 10 + 0.1
        modified = BarlowTwinsLoss(normalize_latents=True)
        torch.testing.assert_close(modified(z_a * scales, z_b).loss, modified(z_a, z_b).loss)
        plain = BarlowTwinsLoss()
        assert not torch.allclose(plain(z_a * scales, z_b).loss, plain(z_a, z_b).loss)

    def test_ablations_keep_one_term(self) -> None:
        z_a, z_b = random_pair(6, 16, 6)
        full = BarlowTwinsLoss(lambda_=0.2)(z_a, z_b)
        torch.testing.assert_close(BarlowTwinsLoss(lambda_=0.0)(z_a, z_b).loss, full.invariance)
        redundancy_only = BarlowTwinsLoss(lambda_=0.2, invariance_weight=0.0)(z_a, z_b).loss
        torch.testing.assert_close(redundancy_only, 0.2 * full.redundancy)
        with pytest.raises(ValueError, match="at least one term with a positive weight, found 0/0"):
            BarlowTwinsLoss(lambda_=0.0, invariance_weight=0.0)

    def test_frame_level_pairs_the_frames_of_two_views_of_one_crop(self) -> None:
        quiet = ViewConfig(
            crop_seconds=0.5,
            noise=AddNoise(p=0.0),
            gain=Gain(p=0.0),
            time_mask=TimeMask(1, p=0.0),
            freq_mask=FrequencyMask(1, p=0.0),
        )
        method = BarlowTwins(tiny_encoder(dropout=0.0), small_config(level="frame", view=quiet)).eval()
        batch = audio_batch([12000, 8000, 5000])
        z_a, z_b = method.project_views(batch.waveforms, batch.lengths, torch.Generator().manual_seed(0))
        frames = method.encoder(batch.waveforms[:, :8000], batch.lengths.clamp(max=8000)).lengths
        assert z_a.shape == (int(frames.sum()), 32)
        torch.testing.assert_close(z_a, z_b)  # no augmentation: the same crop gives the same frames
        method.train()
        out = BarlowTwins(
            tiny_encoder(), small_config(level="frame"), generator=torch.Generator().manual_seed(0)
        )(batch)
        assert torch.isfinite(out.loss)

    def test_vicreg_variant_trains_through_the_method(self) -> None:
        method = BarlowTwins(
            tiny_encoder(), small_config(loss="vicreg"), generator=torch.Generator().manual_seed(0)
        )
        out = method(audio_batch([12000, 8000, 5000, 9000]))
        assert {"invariance", "variance", "covariance", "effective_rank"} <= set(out.metrics)
        out.loss.backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.encoder.parameters())
