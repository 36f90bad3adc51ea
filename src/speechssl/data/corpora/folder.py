"""Generic loaders: any folder of audio files, or an existing manifest file."""

from __future__ import annotations

from pathlib import Path

from speechssl.data.corpora.common import AUDIO_SUFFIXES, list_audio, probe_utterance
from speechssl.data.manifest import MANIFEST_SUFFIXES, Manifest

UNKNOWN_SPEAKER = "unknown"


def load_folder(
    root: str | Path,
    label_column: str | None = None,
    speaker_from_parent: bool = False,
    split: str = "train",
) -> Manifest:
    """Manifest of every audio file under ``root`` (recursive), or of a manifest file.

    Args:
        root: a folder, or a ``.csv``/``.jsonl`` manifest (then loaded as is).
        label_column: if set, a label column of this name holds each file's parent folder
            name (e.g. ``label_column="keyword"`` for ``root/yes/001.wav``).
        speaker_from_parent: take the speaker from the parent folder name instead of
            ``"unknown"``.
        split: split of every row.

    Ids are the paths relative to ``root`` without suffix (``yes/001``).

    Raises:
        FileNotFoundError: ``root`` does not exist, or the folder holds no audio files.
    """
    root = Path(root).expanduser()
    if root.is_file() and root.suffix.lower() in MANIFEST_SUFFIXES:
        return Manifest.load(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"corpus 'folder': {root} is neither a folder of audio files nor a .csv/.jsonl manifest"
        )
    files = list_audio(root)
    if not files:
        raise FileNotFoundError(f"corpus 'folder': no audio files ({', '.join(AUDIO_SUFFIXES)}) under {root}")
    rows = []
    for path in files:
        labels = {label_column: path.parent.name} if label_column else {}
        rows.append(
            probe_utterance(
                path,
                id=path.relative_to(root).with_suffix("").as_posix(),
                speaker=path.parent.name if speaker_from_parent else UNKNOWN_SPEAKER,
                split=split,
                labels=labels,
            )
        )
    return Manifest(rows)


def load_manifest_file(root: str | Path) -> Manifest:
    """The manifest saved at ``root`` (``.csv`` or ``.jsonl``); see :meth:`Manifest.load`."""
    return Manifest.load(root)
