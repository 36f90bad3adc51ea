"""Fixtures shared by the whole suite: the real corpora beside the repository, and a tiny
pretrained checkpoint."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from speechssl.data import Manifest
from speechssl.downstream.tasks import CorpusTask
from speechssl.train import TrainResult, load_pretrain_config, pretrain

# torch learns which functions create tensors (for `with torch.device(...)`) the first time a
# device context is used, and keeps that list; transformers' from_pretrained swaps
# torch.linspace for a wrapper while it builds a model on the meta device, so a suite whose
# first device context ran inside it would no longer place linspace's tensors. Learn it now.
with torch.device("meta"):
    torch.empty(0)

# the suite runs on every core (pytest-xdist, `-n auto` in pyproject.toml): one intra-op thread
# per worker process, so the workers do not oversubscribe the cores (tests that need more threads
# ask for them)
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

TINY_PRETRAIN_OVERRIDES = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1", "encoder.n_mels=40",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "objective.projector=[32, 32]", "objective.view.crop_seconds=0.5",
    "data.synthetic.num_utterances=40", "data.synthetic.num_speakers=4", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0",
    "optim.warmup_steps=1", "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=2",
    "train.device=cpu",
)  # fmt: skip

TINY_HUBERT_OVERRIDES = (
    "encoder.dim=32", "encoder.heads=2", "encoder.ffn_dim=64", "encoder.layers=1", "encoder.n_mels=16",
    "encoder.subsampling_channels=8", "encoder.pos_conv_kernel=8", "encoder.pos_conv_groups=4",
    "data.synthetic.num_utterances=24", "data.synthetic.num_speakers=2", "data.crop_seconds=0.75",
    "data.max_batch_seconds=6.0", "data.num_workers=0", "optim.warmup_steps=1", "train.max_steps=2",
    "train.log_every=1", "train.checkpoint_every=2", "train.device=cpu",
    "objective.targets.num_units=8", "objective.targets.max_frames=400", "objective.final_dim=16",
)  # fmt: skip


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Point speechssl's cache (synthetic corpora, features) at a temporary folder, never ``~/.cache``."""
    patch = pytest.MonkeyPatch()
    patch.setenv("SPEECHSSL_CACHE", str(tmp_path_factory.mktemp("speechssl_cache")))
    yield
    patch.undo()


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """``shared_data("fsdd")`` -> the folder under ``../shared/data``, or skip the test if it is absent."""

    def locate(name: str) -> Path:
        folder = SHARED_DATA / name
        if not folder.is_dir():
            pytest.skip(f"shared corpus {name!r} not found at {folder} (see the shared data README)")
        return folder

    return locate


@pytest.fixture
def tiny_pretrain_overrides() -> list[str]:
    """``key=value`` overrides shrinking Barlow Twins pretraining to seconds on a CPU."""
    return list(TINY_PRETRAIN_OVERRIDES)


@pytest.fixture
def tiny_hubert_overrides() -> list[str]:
    """``key=value`` overrides shrinking HuBERT pretraining (k-means of 8 MFCC units included) to seconds."""
    return list(TINY_HUBERT_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TrainResult:
    """A 3-step Barlow Twins run of a tiny encoder on a 40-utterance synthetic corpus."""
    root = tmp_path_factory.mktemp("tiny_run")
    config = load_pretrain_config(
        None, [*TINY_PRETRAIN_OVERRIDES, f"data.root={root / 'corpus'}"], method="barlow_twins"
    )
    return pretrain(config, root / "run")


TINY_PER_GROUP = 4
TINY_LABELS = 3
TINY_ASR_SPEAKERS = 6


def tiny_subset(manifest: Manifest, label: str) -> Manifest:
    """The most frequent ``TINY_LABELS`` values of ``label`` (all values for speaker and gender
    tasks; the first ``TINY_ASR_SPEAKERS`` speakers' transcripts), then at most
    ``TINY_PER_GROUP`` utterances per (speaker, label, split)."""
    if label == "transcript":
        speakers = sorted(set(manifest.column("speaker")))[:TINY_ASR_SPEAKERS]
        manifest = manifest.filter(speaker=speakers)
    values = manifest.column(label)
    kept_values = (
        set(values)
        if label in ("speaker", "transcript", "gender")
        else {v for v, _ in Counter(values).most_common(TINY_LABELS)}
    )
    seen: defaultdict[tuple, int] = defaultdict(int)
    rows = []
    for index, row in enumerate(manifest):
        key = (row.speaker, values[index], row.split)
        if values[index] in kept_values and seen[key] < TINY_PER_GROUP:
            seen[key] += 1
            rows.append(index)
    return manifest.select(rows)


@pytest.fixture
def tiny_tasks(monkeypatch) -> None:
    """Every registered task loads a tiny subset of its real corpus (see :func:`tiny_subset`)."""
    load = CorpusTask.load
    monkeypatch.setattr(CorpusTask, "load", lambda self, root: tiny_subset(load(self, root), self.label))
