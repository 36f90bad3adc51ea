"""The feature cache: hits skip the upstream, every key part invalidates, writes are atomic."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from speechssl.data import AudioDataset, Manifest, generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.cache import FeatureCache, compute_pooled, resolve_layers
from speechssl.models.output import EncoderOutput
from speechssl.models.pooling import masked_mean_std
from speechssl.upstream import build_upstream
from speechssl.upstream.base import Upstream

FP16 = {"atol": 2e-3, "rtol": 2e-3}  # float16 keeps 11 significant bits: ~1e-3 relative


class WatchedUpstream(Upstream):
    """Wraps an upstream: counts forward calls, optionally fails at one, optionally scales outputs."""

    def __init__(self, inner: Upstream, fail_at_call: int | None = None, scale: float = 1.0) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.hidden_sizes = inner.hidden_sizes
        self.downsample_rate = inner.downsample_rate
        self.fail_at_call = fail_at_call
        self.scale = scale
        self.calls = 0

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> EncoderOutput:
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("simulated crash mid-extraction")
        output = self.inner(waveforms, lengths)
        hidden = [states * self.scale for states in output.hidden_states]
        return EncoderOutput(hidden, output.lengths, output.downsample_rate)

    def fingerprint(self) -> str:
        return self.inner.fingerprint()


def _corpus(folder: Path, utterances: int = 8) -> Manifest:
    return generate_synthetic_corpus(SyntheticConfig(num_utterances=utterances, num_speakers=2), folder)


def _entries(root: Path) -> list[Path]:
    """Every complete entry folder under ``root`` (one holding ``meta.json``)."""
    return sorted(path.parent for path in root.glob("*/*/meta.json"))


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def test_miss_then_hit_never_reruns_the_upstream(tmp_path):
    manifest = _corpus(tmp_path / "corpus")
    upstream = WatchedUpstream(build_upstream("random:tiny"))
    cache = FeatureCache(tmp_path / "cache")

    first = cache.pooled(upstream, manifest, max_batch_seconds=4.0)
    calls = upstream.calls
    assert calls > 1 and not first.hit
    second = cache.pooled(upstream, manifest, max_batch_seconds=4.0)
    assert second.hit and upstream.calls == calls
    assert (cache.stats.hits, cache.stats.misses) == (1, 1) and cache.stats.compute_seconds > 0
    assert second.entry == first.entry and _entries(cache.root) == [first.entry]
    assert first.entry.parent.name == first.entry.name[:2] and len(first.entry.name) == 64

    assert second.ids == manifest.ids and second.layers == (0, 1, 2)
    assert second.mean.shape == second.std.shape == (3, len(manifest), 128)
    assert second.mean.dtype == np.float16
    np.testing.assert_array_equal(second.mean, first.mean)
    np.testing.assert_array_equal(second.std, first.std)

    meta = json.loads((first.entry / "meta.json").read_text())
    assert meta["key"] == first.entry.name and meta["parts"]["kind"] == "pooled"
    assert meta["parts"]["upstream"] == upstream.fingerprint() and meta["parts"]["layers"] == [0, 1, 2]
    assert meta["parts"]["manifest"] == manifest.digest()
    assert meta["upstream_name"] == "random:tiny" and meta["utterances"] == len(manifest)
    assert meta["compute_seconds"] >= 0 and meta["created"]


def test_cached_arrays_are_read_only_memory_maps(tmp_path):
    manifest = _corpus(tmp_path / "corpus", utterances=4)
    cache = FeatureCache(tmp_path / "cache")
    pooled = cache.pooled(build_upstream("fbank"), manifest)
    frames = cache.frames(build_upstream("fbank"), manifest)
    for array in (pooled.mean, pooled.std, frames.frames):
        assert isinstance(array, np.memmap) and array.filename is not None
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


def test_pooled_statistics_match_a_direct_computation(tmp_path):
    """Cached mean and std equal float32 statistics pooling of each utterance run alone."""
    manifest = _corpus(tmp_path / "corpus")
    upstream = build_upstream("random:tiny")
    cached = FeatureCache(tmp_path / "cache").pooled(upstream, manifest, max_batch_seconds=60.0)
    dataset = AudioDataset(manifest)
    for row in range(len(manifest)):
        waveform = dataset[row].waveform[None]  # (1, samples)
        output = upstream(waveform, torch.tensor([waveform.shape[1]]))
        for layer, states in enumerate(output.hidden_states):
            expected = masked_mean_std(states, output.lengths, eps=0.0)[0]  # (2 * dim,)
            found = torch.from_numpy(np.concatenate([cached.mean[layer, row], cached.std[layer, row]]))
            torch.testing.assert_close(found.float(), expected, **FP16)

    uncached = compute_pooled(upstream, manifest, max_batch_seconds=60.0)
    assert uncached.entry is None and not uncached.hit
    np.testing.assert_array_equal(uncached.mean, cached.mean)
    np.testing.assert_array_equal(uncached.std, cached.std)


def test_frames_offsets_and_utterances_match_the_upstream_alone(tmp_path):
    manifest = _corpus(tmp_path / "corpus")
    upstream = build_upstream("random:tiny")
    frames = FeatureCache(tmp_path / "cache").frames(
        upstream, manifest, layers=[-1, 0], max_batch_seconds=3.0
    )
    assert frames.layers == (2, 0) and frames.ids == manifest.ids and len(frames) == len(manifest)
    assert frames.downsample_rate == upstream.downsample_rate
    assert frames.offsets.dtype == np.int64 and frames.offsets[0] == 0
    assert frames.frames.shape == (frames.offsets[-1], 2, 128) and frames.frames.dtype == np.float16

    dataset = AudioDataset(manifest)
    for row in range(len(manifest)):
        waveform = dataset[row].waveform[None]  # (1, samples)
        output = upstream(waveform, torch.tensor([waveform.shape[1]]))
        count = int(output.lengths[0])
        assert frames.lengths[row] == count
        expected = torch.stack([output.hidden_states[2][0], output.hidden_states[0][0]], dim=1)
        found = torch.from_numpy(frames.utterance(row).astype(np.float32))  # (frames, layers, dim)
        torch.testing.assert_close(found, expected[:count], **FP16)
    np.testing.assert_array_equal(frames.utterance(-1), frames.utterance(len(manifest) - 1))
    with pytest.raises(IndexError, match=r"utterance index: expected an integer in \[-8, 8\), found 8"):
        frames.utterance(8)


def _other_weights(upstream: Upstream, manifest: Manifest) -> tuple[Upstream, Manifest, dict]:
    return build_upstream("random:tiny", seed=1), manifest, {}


def _subset(upstream: Upstream, manifest: Manifest) -> tuple[Upstream, Manifest, dict]:
    return upstream, manifest.select(range(len(manifest) - 1)), {}


def _touched(upstream: Upstream, manifest: Manifest) -> tuple[Upstream, Manifest, dict]:
    stat = os.stat(manifest[0].path)
    os.utime(manifest[0].path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    return upstream, manifest, {}


def _resized(upstream: Upstream, manifest: Manifest) -> tuple[Upstream, Manifest, dict]:
    """Same modification time, different size: the content changed."""
    path = manifest[0].path
    stat = os.stat(path)
    with path.open("ab") as handle:
        handle.write(b"\0\0")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return upstream, manifest, {}


def _layers(upstream: Upstream, manifest: Manifest) -> tuple[Upstream, Manifest, dict]:
    return upstream, manifest, {"layers": [0, 1]}


@pytest.mark.parametrize(
    "change",
    [_other_weights, _subset, _touched, _resized, _layers],
    ids=["weights", "manifest-subset", "audio-mtime", "audio-size", "layers"],
)
@pytest.mark.parametrize("kind", ["pooled", "frames"])
def test_each_key_part_invalidates(tmp_path, kind: str, change: Callable):
    manifest = _corpus(tmp_path / "corpus", utterances=4)
    cache = FeatureCache(tmp_path / "cache")
    extract = getattr(cache, kind)
    upstream = build_upstream("random:tiny")
    first = extract(upstream, manifest)
    assert extract(upstream, manifest).hit

    changed_upstream, changed_manifest, options = change(upstream, manifest)
    watched = WatchedUpstream(changed_upstream)
    second = extract(watched, changed_manifest, **options)
    assert not second.hit and watched.calls > 0
    assert second.entry != first.entry and len(_entries(cache.root)) == 2
    assert extract(watched, changed_manifest, **options).hit


def test_pooled_and_frames_are_separate_entries(tmp_path):
    manifest = _corpus(tmp_path / "corpus", utterances=4)
    cache = FeatureCache(tmp_path / "cache")
    upstream = WatchedUpstream(build_upstream("fbank"))
    pooled = cache.pooled(upstream, manifest)
    frames = cache.frames(upstream, manifest)
    assert not pooled.hit and not frames.hit and pooled.entry != frames.entry
    assert json.loads((frames.entry / "meta.json").read_text())["parts"]["kind"] == "frames"
    assert cache.frames(upstream, manifest).hit and cache.pooled(upstream, manifest).hit


@pytest.mark.parametrize("kind", ["pooled", "frames"])
def test_an_interrupted_extraction_leaves_no_entry(tmp_path, kind: str):
    manifest = _corpus(tmp_path / "corpus")
    cache = FeatureCache(tmp_path / "cache")
    crashing = WatchedUpstream(build_upstream("fbank"), fail_at_call=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        getattr(cache, kind)(crashing, manifest, max_batch_seconds=2.0)
    assert _files(cache.root) == []  # neither an entry nor a partial folder is left

    watched = WatchedUpstream(build_upstream("fbank"))
    features = getattr(cache, kind)(watched, manifest, max_batch_seconds=2.0)
    assert not features.hit and watched.calls > 1 and _entries(cache.root) == [features.entry]


def test_a_damaged_entry_is_recomputed(tmp_path):
    manifest = _corpus(tmp_path / "corpus", utterances=4)
    cache = FeatureCache(tmp_path / "cache")
    upstream = build_upstream("fbank")
    entry = cache.frames(upstream, manifest).entry
    expected = np.array(cache.frames(upstream, manifest).frames)
    (entry / "offsets.npy").write_bytes(b"truncated")
    again = cache.frames(upstream, manifest)
    assert not again.hit and again.entry == entry
    np.testing.assert_array_equal(again.frames, expected)


def test_a_disabled_cache_computes_every_time_and_stores_nothing(tmp_path):
    manifest = _corpus(tmp_path / "corpus", utterances=4)
    enabled = FeatureCache(tmp_path / "cache")
    disabled = FeatureCache(tmp_path / "scratch", enabled=False)
    upstream = WatchedUpstream(build_upstream("fbank"))
    for _ in range(2):
        pooled = disabled.pooled(upstream, manifest)
        frames = disabled.frames(upstream, manifest)
        assert not pooled.hit and not frames.hit and pooled.entry is None and frames.entry is None
    assert disabled.stats.misses == 4 and disabled.stats.hits == 0
    assert _files(disabled.root) == []
    with pytest.raises(ValueError, match="read-only"):
        pooled.mean[0] = 0
    np.testing.assert_array_equal(pooled.mean, enabled.pooled(upstream, manifest).mean)
    np.testing.assert_array_equal(frames.frames, enabled.frames(upstream, manifest).frames)
    np.testing.assert_array_equal(frames.offsets, enabled.frames(upstream, manifest).offsets)


def test_features_outside_the_float16_range_are_refused(tmp_path):
    manifest = _corpus(tmp_path / "corpus", utterances=2)
    cache = FeatureCache(tmp_path / "cache")
    loud = WatchedUpstream(build_upstream("fbank"), scale=1e6)
    with pytest.raises(ValueError, match=r"upstream 'fbank' layer 0: .* float16 range"):
        cache.pooled(loud, manifest)
    with pytest.raises(ValueError, match=r"upstream 'fbank' layers \[0\]: .* float16 range"):
        cache.frames(loud, manifest)
    assert _files(cache.root) == []


def test_layer_choice_and_missing_audio_errors(tmp_path):
    assert resolve_layers(None, 3) == (0, 1, 2)
    assert resolve_layers([-1, 0], 3) == (2, 0)
    with pytest.raises(ValueError, match=r"layers: expected indices in \[-3, 3\) .* found 3"):
        resolve_layers([3], 3)
    with pytest.raises(ValueError, match="distinct"):
        resolve_layers([1, -2], 3)

    manifest = _corpus(tmp_path / "corpus", utterances=2)
    manifest[1].path.unlink()
    with pytest.raises(FileNotFoundError, match=rf"{manifest[1].path}: audio file of utterance 'utt000001'"):
        FeatureCache(tmp_path / "cache").pooled(build_upstream("fbank"), manifest)


def test_default_root_follows_the_speechssl_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHSSL_CACHE", str(tmp_path))
    assert FeatureCache().root == tmp_path / "features"
