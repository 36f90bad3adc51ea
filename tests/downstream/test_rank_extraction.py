"""Feature extraction under torchrun: each rank its share, rank 0 stores what one process stores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from distributed_helpers import spawn_ranks
from torch.multiprocessing import ProcessExitedException

from speechssl import distributed
from speechssl.cli import main
from speechssl.data import Manifest, generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.cache import FeatureCache, extraction_batches
from speechssl.downstream.rank_extraction import extract_on_every_rank, rank_shares
from speechssl.models.output import EncoderOutput
from speechssl.storage import is_partial
from speechssl.upstream import build_upstream
from speechssl.upstream.base import Upstream

UTTERANCES = 12
MAX_BATCH_SECONDS = 2.5  # two ~1 s utterances per batch: six batches to deal to two ranks
ARRAYS = {"pooled": ("mean.npy", "std.npy"), "frames": ("frames.npy", "offsets.npy")}


class CountingUpstream(Upstream):
    """Wraps an upstream, counting the utterances it runs; at its first forward, raises
    (``fail="raise"``) or kills its process (``fail="exit"``) if told to.

    Its features depend on the batch an utterance is in (its padded length is added to them),
    as the rounding of real kernels may: they equal one process's only if every utterance is
    run in the batch it has there.
    """

    def __init__(self, inner: Upstream, fail: str | None = None) -> None:
        super().__init__()
        self.inner, self.fail = inner, fail
        self.name, self.hidden_sizes, self.downsample_rate = (
            inner.name,
            inner.hidden_sizes,
            inner.downsample_rate,
        )
        self.utterances = 0

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        if self.fail == "exit":
            os._exit(3)
        if self.fail == "raise":
            raise RuntimeError("simulated failure of this rank's upstream")
        self.utterances += len(lengths)
        output = self.inner(waveforms, lengths)
        padded = waveforms.shape[-1] / self.sample_rate
        hidden = [states + padded for states in output.hidden_states]
        return EncoderOutput(hidden, output.lengths, output.downsample_rate)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()


@pytest.fixture
def no_launcher_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


def _corpus(folder: Path) -> Manifest:
    return generate_synthetic_corpus(SyntheticConfig(num_utterances=UTTERANCES, num_speakers=2), folder)


def _extract(cache: FeatureCache, upstream: Upstream, manifest: Manifest) -> dict:
    pooled = cache.pooled(upstream, manifest, max_batch_seconds=MAX_BATCH_SECONDS)
    frames = cache.frames(upstream, manifest, layers=[0, -1], max_batch_seconds=MAX_BATCH_SECONDS)
    return {"pooled": pooled, "frames": frames}


def _extracting_rank(rank: int, world_size: int, corpus: str, root: str, out: str) -> None:
    distributed.setup_from_env()
    try:
        manifest = Manifest.load(Path(corpus) / "manifest.csv")
        upstream = CountingUpstream(build_upstream("random:tiny"))
        cache = FeatureCache(root)
        with cache.split_across_ranks():
            first = _extract(cache, upstream, manifest)
            computed = upstream.utterances
            second = _extract(cache, upstream, manifest)
        record = {
            "computed": computed,
            "after_second": upstream.utterances,
            "first_hits": [features.hit for features in first.values()],
            "second_hits": [features.hit for features in second.values()],
            "entries": {kind: str(features.entry) for kind, features in first.items()},
            "equal_on_rank": bool(np.array_equal(first["frames"].frames, second["frames"].frames)),
        }
        Path(out, f"rank_{rank}.json").write_text(json.dumps(record))
        failing = CountingUpstream(build_upstream("random:tiny"), fail="raise" if rank == 1 else None)
        try:
            with FeatureCache(f"{root}_failing").split_across_ranks() as cache:
                cache.pooled(failing, manifest, max_batch_seconds=MAX_BATCH_SECONDS)
        except RuntimeError as err:  # RankFailedError on the ranks that did not fail
            Path(out, f"failure_{rank}.txt").write_text(f"{type(err).__name__}: {err}")
        dying = CountingUpstream(build_upstream("random:tiny"), fail="exit" if rank == 1 else None)
        with FeatureCache(f"{root}_killed").split_across_ranks() as cache:
            cache.pooled(dying, manifest, max_batch_seconds=MAX_BATCH_SECONDS)
    finally:
        distributed.cleanup()


def test_rank_shares_deal_every_batch_once_balanced_by_padded_duration():
    durations = np.array([1.0, 3.0, 2.0, 2.0, 1.0, 4.0, 0.5, 2.5, 3.5])
    batches = [[6, 0], [4], [2, 3], [7], [1], [8], [5]]
    shares = rank_shares(batches, durations, 2)
    again = rank_shares(batches, durations, 2)  # every rank computes the same shares
    assert [(s.rows.tolist(), s.batches, s.seconds) for s in shares] == [
        (s.rows.tolist(), s.batches, s.seconds) for s in again
    ]
    rows = [int(row) for share in shares for row in share.rows]
    assert sorted(rows) == list(range(len(durations)))
    costs = [len(batch) * durations[batch].max() for batch in batches]
    assert sum(share.seconds for share in shares) == pytest.approx(sum(costs))
    assert abs(shares[0].seconds - shares[1].seconds) <= max(costs)
    for share in shares:  # a share runs whole batches, in their order, with their utterances in theirs
        own = [batch for batch in batches if set(batch) <= set(share.rows.tolist())]
        assert [[int(share.rows[p]) for p in batch] for batch in share.batches] == own
    assert [len(share.rows) for share in rank_shares(batches[:1], durations, 3)] == [2, 0, 0]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    """Two gloo ranks extracting one corpus (twice), then a request on which rank 1 fails, then
    one during which rank 1's process dies (which ends the run)."""
    folder = tmp_path_factory.mktemp("two_ranks")
    manifest = _corpus(folder / "corpus")
    assert len(extraction_batches(manifest, MAX_BATCH_SECONDS)) >= 4
    with pytest.raises(ProcessExitedException, match="process 1 terminated with exit code 3"):
        spawn_ranks(_extracting_rank, str(folder / "corpus"), str(folder / "ranks"), str(folder))
    return folder


def test_two_ranks_store_the_same_arrays_as_one_process_each_doing_half(two_ranks):
    tmp_path = two_ranks
    manifest = Manifest.load(tmp_path / "corpus" / "manifest.csv")
    records = [json.loads((tmp_path / f"rank_{rank}.json").read_text()) for rank in range(2)]

    # each rank ran a disjoint part of about half the utterances, once for both requests
    computed = [record["computed"] for record in records]
    assert sum(computed) == 2 * UTTERANCES and all(
        0.3 * UTTERANCES <= c / 2 <= 0.7 * UTTERANCES for c in computed
    )
    assert [record["first_hits"] for record in records] == [[False, False]] * 2
    # the second run is read from the cache on every rank: nobody runs the upstream again
    assert [record["second_hits"] for record in records] == [[True, True]] * 2
    assert all(record["after_second"] == record["computed"] and record["equal_on_rank"] for record in records)
    assert records[0]["entries"] == records[1]["entries"]

    torch.set_num_threads(1)  # the ranks ran one thread each
    single = _extract(
        FeatureCache(tmp_path / "single"), CountingUpstream(build_upstream("random:tiny")), manifest
    )
    for kind, names in ARRAYS.items():
        entry = Path(records[0]["entries"][kind])
        assert entry.parent.parent == tmp_path / "ranks" and entry.name == single[kind].entry.name
        for name in (*names, "ids.json"):  # byte-identical files
            assert (entry / name).read_bytes() == (single[kind].entry / name).read_bytes(), name
        meta = json.loads((entry / "meta.json").read_text())
        assert sum(share["utterances"] for share in meta["ranks"]) == UTTERANCES
    stored = FeatureCache(tmp_path / "ranks").pooled(
        CountingUpstream(build_upstream("random:tiny")), manifest, max_batch_seconds=MAX_BATCH_SECONDS
    )
    assert stored.hit and np.array_equal(stored.mean, single["pooled"].mean)
    assert np.array_equal(stored.std, single["pooled"].std)
    # nothing but the two entries is left in the cache folder
    leftovers = [p for p in (tmp_path / "ranks").rglob("*") if is_partial(p) or p.name.startswith("rank_")]
    assert leftovers == []


def test_a_failing_rank_leaves_no_entry_and_every_rank_says_which(two_ranks):
    rank0, rank1 = ((two_ranks / f"failure_{rank}.txt").read_text() for rank in range(2))
    assert rank1 == "RuntimeError: simulated failure of this rank's upstream"
    assert rank0.startswith("RankFailedError: feature extraction under torchrun: rank 1 failed on its share")
    assert "simulated failure" in rank0
    # no entry committed, and the staged shares of both ranks are gone
    assert [p for p in (two_ranks / "ranks_failing").rglob("*") if p.is_file()] == []


def test_a_killed_rank_leaves_no_entry(two_ranks):
    left = [path for path in (two_ranks / "ranks_killed").rglob("*") if path.is_file()]
    assert not [path for path in left if path.name == "meta.json"]
    # what a killed run may leave is staged under a temporary name, never read as an entry
    assert all(any(is_partial(parent) for parent in path.parents) for path in left)


def test_one_process_extracts_as_it_always_did(no_launcher_env):
    called = []
    assert extract_on_every_rank(FeatureCache(enabled=False), lambda: called.append(1))
    assert called == [] and not distributed.is_distributed()


def test_a_disabled_cache_is_refused_under_several_ranks(monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    cache = FeatureCache(enabled=False)
    with (
        pytest.raises(ValueError, match="expected it enabled to extract under torchrun"),
        cache.split_across_ranks(),
    ):
        pass


def _evaluating_rank(rank: int, world_size: int, corpus: str, cache: str, output: str) -> None:
    probe = ["probe", "--manifest", f"{corpus}/manifest.csv", "--task", "gender", "--upstream", "fbank"]
    probe += [
        "--cache-dir",
        cache,
        "--output",
        f"{output}/probe",
        "--max-batch-seconds",
        str(MAX_BATCH_SECONDS),
    ]
    benchmark = ["benchmark", "--upstreams", "fbank,random:tiny", "--tasks", f"{corpus}/manifest.csv:gender"]
    benchmark += ["--cache-dir", cache, "--output", f"{output}/benchmark", "--seeds", "1"]
    distributed.setup_from_env()  # held across both commands, as a script running several would
    try:
        codes = [main([*probe, "max_epochs=2"]), main([*benchmark, "max_epochs=2"])]
        Path(output, f"exit_{rank}.json").write_text(json.dumps([*codes, distributed.is_distributed()]))
    finally:
        distributed.cleanup()


def test_probe_and_benchmark_under_torchrun_extract_on_both_ranks_and_rank_0_reports(tmp_path, capfd):
    _corpus(tmp_path / "corpus")
    spawn_ranks(_evaluating_rank, str(tmp_path / "corpus"), str(tmp_path / "cache"), str(tmp_path))
    # both ranks ended cleanly (leaving the group they were given up); only rank 0 trained and reported
    exits = [json.loads((tmp_path / f"exit_{rank}.json").read_text()) for rank in range(2)]
    assert exits == [[0, 0, True]] * 2
    summary = json.loads((tmp_path / "probe" / "summary.json").read_text())
    assert [(row["upstream"], row["task"], row["n"]) for row in summary] == [("fbank", "gender", 1)]
    assert len(list((tmp_path / "benchmark" / "runs").rglob("seed_0.json"))) == 2
    assert capfd.readouterr().out.count("# ") >= 1  # rank 0 printed the report
    # fbank's entry (the probe's 2.5 s batches; the benchmark reuses it) was computed by both
    # ranks; random:tiny's (the benchmark's one 60 s batch) by the rank that got the batch
    shares = [json.loads(meta.read_text())["ranks"] for meta in (tmp_path / "cache").rglob("meta.json")]
    assert sorted(sum(share["utterances"] > 0 for share in ranks) for ranks in shares) == [1, 2]
