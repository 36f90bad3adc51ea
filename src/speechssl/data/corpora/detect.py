"""Guess which corpus loader fits a folder, from the layout each corpus ships with."""

from __future__ import annotations

import re
from pathlib import Path

from speechssl.data.corpora.fsdd import FILE_PATTERN as FSDD_FILE_PATTERN
from speechssl.data.corpora.lhotse import is_cutset_file
from speechssl.data.corpora.librispeech import find_subsets
from speechssl.data.manifest import MANIFEST_SUFFIXES

RAVDESS_ACTOR_FOLDER = re.compile(r"^Actor_\d\d$")


def _looks_like_fsdd(folder: Path) -> bool:
    first = next(folder.glob("*.wav"), None)
    return first is not None and FSDD_FILE_PATTERN.match(first.stem) is not None


def detect_corpus(root: str | Path) -> str:
    """The name of the loader (see ``available_corpora``) whose native layout ``root`` has.

    Checks, in order: a lhotse CutSet file (``lhotse``); a ``.csv``/``.jsonl`` file (``manifest``); FSDD recordings;
    LibriSpeech subset folders; RAVDESS ``Actor_XX`` folders; Fluent Speech Commands
    (``data/train_data.csv`` and ``wavs/speakers/``); Arabic Speech Commands (``train.csv``
    or ``dataset/``); Speech Commands (``testing_list.txt`` or ``_background_noise_``);
    VoxCeleb1 (``iden_split.txt``); IEMOCAP (``Session1/dialog/EmoEvaluation``).
    Anything else is ``folder``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root).expanduser()
    if is_cutset_file(root):
        return "lhotse"
    if root.is_file() and root.suffix.lower() in MANIFEST_SUFFIXES:
        return "manifest"
    if not root.is_dir():
        raise FileNotFoundError(
            f"cannot detect the corpus: {root} is not a folder, a .csv/.jsonl manifest or a lhotse CutSet"
        )
    if _looks_like_fsdd(root / "recordings") or _looks_like_fsdd(root):
        return "fsdd"
    if find_subsets(root):
        return "librispeech"
    if any(RAVDESS_ACTOR_FOLDER.match(p.name) for p in root.iterdir() if p.is_dir()):
        return "ravdess"
    if (root / "data" / "train_data.csv").is_file() and (root / "wavs" / "speakers").is_dir():
        return "fluent_speech_commands"
    if (root / "train.csv").is_file() or (root / "dataset").is_dir():
        return "arabic_speech_commands"
    if (root / "testing_list.txt").is_file() or (root / "_background_noise_").is_dir():
        return "speech_commands"
    if (root / "iden_split.txt").is_file():
        return "voxceleb1"
    if (root / "Session1" / "dialog" / "EmoEvaluation").is_dir():
        return "iemocap"
    return "folder"
