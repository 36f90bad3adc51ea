"""Helpers shared by the corpus loaders: folder checks and header-only file probing."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from speechssl.data.audio import audio_info
from speechssl.data.manifest import Utterance

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


def require_folder(root: str | Path, corpus: str) -> Path:
    """``root`` as a Path, or FileNotFoundError naming the corpus and the folder."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"corpus {corpus!r}: folder not found: {root}")
    return root


def probe_utterance(path: Path, *, id: str, speaker: str, split: str, labels: Mapping[str, str]) -> Utterance:
    """An :class:`Utterance` for ``path`` whose duration and rate come from its header.

    Raises:
        AudioError: the file is missing or its header is unreadable.
    """
    info = audio_info(path)
    return Utterance(
        id=id,
        path=path,
        duration=info.duration,
        sample_rate=info.sample_rate,
        speaker=speaker,
        split=split,
        labels=dict(labels),
    )


def list_audio(folder: Path) -> list[Path]:
    """Audio files (by suffix, case-insensitive) anywhere under ``folder``, sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
