"""The feature cache on a full disk (a named OSError, never SIGBUS; nothing partial left) and
the cleanup of `.partial` folders left by killed runs."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechssl import storage
from speechssl.data import generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.upstream import build_upstream


def _files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return generate_synthetic_corpus(
        SyntheticConfig(num_utterances=6, num_speakers=2), tmp_path_factory.mktemp("corpus")
    )


@pytest.mark.parametrize("kind", ["pooled", "frames"])
def test_a_full_disk_is_a_named_error_that_leaves_nothing_and_the_next_run_proceeds(
    tmp_path, monkeypatch, corpus, kind
):
    cache = FeatureCache(tmp_path / "cache")
    upstream = build_upstream("fbank")

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(storage.os, "posix_fallocate", no_space)
        with pytest.raises(
            OSError,
            match=r"feature cache entry of 'fbank': not enough disk space in .*cache/.*needs about \d",
        ):
            getattr(cache, kind)(upstream, corpus)
    assert _files(tmp_path / "cache") == []  # the staging folder and its sparse arrays are gone
    features = getattr(cache, kind)(upstream, corpus)
    assert not features.hit and features.entry.is_dir()


def test_stale_partial_folders_are_removed_and_live_ones_kept(tmp_path, corpus):
    cache = FeatureCache(tmp_path / "cache")
    upstream = build_upstream("fbank")
    entry = cache.pooled(upstream, corpus).entry
    shutil.rmtree(entry)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    host = socket.gethostname()
    stale = entry.parent / f".{entry.name}.pid{int(dead.stdout)}@{host}.abc123.partial"
    live = entry.parent / f".{entry.name}.pid{os.getpid()}@{host}.def456.partial"
    foreign = entry.parent / f".{entry.name}.pid{int(dead.stdout)}@another-host.ghi789.partial"
    unknown_old = entry.parent / f".{entry.name}.jkl000.partial"
    for folder in (stale, live, foreign, unknown_old):
        folder.mkdir()
        (folder / "mean.npy").write_bytes(b"half")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(unknown_old, (day_ago, day_ago))
    assert not cache.pooled(upstream, corpus).hit
    assert not stale.exists() and not unknown_old.exists()
    assert live.exists() and foreign.exists()  # a live writer's, and another host's too recent to judge


FILL_A_TINY_DISK = """
import sys
from speechssl.data import generate_synthetic_corpus
from speechssl.data.synthetic import SyntheticConfig
from speechssl.downstream.cache import FeatureCache
from speechssl.upstream import build_upstream

corpus = generate_synthetic_corpus(SyntheticConfig(num_utterances=40, num_speakers=2), sys.argv[1])
try:
    FeatureCache(sys.argv[2]).pooled(build_upstream("random:tiny"), corpus)
except OSError as error:
    print("OSError:", error)
"""


def test_a_real_full_tmpfs_ends_in_a_message_not_sigbus(tmp_path):
    """A 16 kB tmpfs holds four pages; the pooled arrays need more, but sparse files take two each."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a private tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    command = (
        f"mount -t tmpfs -o size=16k tmpfs {disk} && "
        f"{sys.executable} -c '{FILL_A_TINY_DISK}' {tmp_path / 'corpus'} {disk / 'cache'}"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    if "mount:" in done.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, (
        f"died with {done.returncode} (135: SIGBUS, through sh): {done.stderr[-500:]}"
    )
    assert f"not enough disk space in {disk / 'cache'}" in done.stdout
