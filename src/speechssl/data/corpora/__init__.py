"""Corpus loaders: each reads one corpus in its native layout and returns a :class:`Manifest`.

``load_corpus(name, root, bad_files=None, **options)`` dispatches by name;
``available_corpora()`` lists the names and ``detect_corpus(root)`` guesses the name from a
folder's layout. Adding a corpus means adding a module here and one entry to ``LOADERS``;
its loader lists its files as ``PendingUtterance`` rows and returns
``Manifest(probe_utterances(candidates, bad_files))`` (see :mod:`.common`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.arabic_speech_commands import load_arabic_speech_commands
from speechssl.data.corpora.detect import detect_corpus
from speechssl.data.corpora.fluent_speech_commands import load_fluent_speech_commands
from speechssl.data.corpora.folder import load_folder, load_manifest_file
from speechssl.data.corpora.fsdd import load_fsdd
from speechssl.data.corpora.iemocap import load_iemocap
from speechssl.data.corpora.lhotse import load_lhotse
from speechssl.data.corpora.librispeech import load_librispeech
from speechssl.data.corpora.pattern import NAMED_PATTERNS, load_pattern
from speechssl.data.corpora.quesst14 import load_quesst14
from speechssl.data.corpora.ravdess import load_ravdess
from speechssl.data.corpora.speech_commands import load_speech_commands, load_speech_commands_superb
from speechssl.data.corpora.voxceleb1 import load_voxceleb1
from speechssl.data.corpora.voxceleb1_verification import load_voxceleb1_verification
from speechssl.data.manifest import Manifest

CorpusLoader = Callable[..., Manifest]

LOADERS: dict[str, CorpusLoader] = {
    "fsdd": load_fsdd,
    "librispeech": load_librispeech,
    "ravdess": load_ravdess,
    "arabic_speech_commands": load_arabic_speech_commands,
    "speech_commands": load_speech_commands,
    "fluent_speech_commands": load_fluent_speech_commands,
    "speech_commands_superb": load_speech_commands_superb,
    "voxceleb1": load_voxceleb1,
    "iemocap": load_iemocap,
    "voxceleb1_verification": load_voxceleb1_verification,
    "quesst14": load_quesst14,
    "folder": load_folder,
    "pattern": load_pattern,
    "manifest": load_manifest_file,
    "lhotse": load_lhotse,
}


def available_corpora() -> dict[str, CorpusLoader]:
    """Corpus name -> loader ``(root, bad_files=None, **options) -> Manifest``."""
    return dict(LOADERS)


def load_corpus(
    name: str, root: str | Path, bad_files: BadFileSummary | None = None, **options: Any
) -> Manifest:
    """Load corpus ``name`` from ``root`` (a folder, or a manifest file for ``"manifest"``, a CutSet file for ``"lhotse"``).

    Args:
        name: a key of :func:`available_corpora`.
        root: the corpus folder, or a manifest file.
        bad_files: where to record the audio files whose header is bad (missing, not audio,
            0 frames), which are then left out of the manifest; ``None`` stops at the first.
            A saved manifest is loaded as is (its rows hold their durations already).
        options: the loader's own options (e.g. ``subsets`` for ``"librispeech"``).

    Raises:
        ValueError: unknown corpus name or option.
        FileNotFoundError: ``root`` does not exist.
        AudioError: with ``bad_files=None``, an audio file whose header is bad.
    """
    if name not in LOADERS:
        raise ValueError(f"unknown corpus {name!r} (expected one of: {', '.join(LOADERS)})")
    loader = LOADERS[name]
    accepted = [p for p in inspect.signature(loader).parameters if p not in ("root", "bad_files")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(
            f"corpus {name!r} has no option {unknown[0]!r} (options: {', '.join(accepted) or 'none'})"
        )
    if not Path(root).expanduser().exists():
        raise FileNotFoundError(f"corpus {name!r}: {root} does not exist")
    return loader(root, bad_files=bad_files, **options)


__all__ = [
    "NAMED_PATTERNS",
    "CorpusLoader",
    "available_corpora",
    "detect_corpus",
    "load_arabic_speech_commands",
    "load_corpus",
    "load_fluent_speech_commands",
    "load_folder",
    "load_fsdd",
    "load_iemocap",
    "load_lhotse",
    "load_librispeech",
    "load_manifest_file",
    "load_pattern",
    "load_quesst14",
    "load_ravdess",
    "load_speech_commands",
    "load_speech_commands_superb",
    "load_voxceleb1",
    "load_voxceleb1_verification",
]
