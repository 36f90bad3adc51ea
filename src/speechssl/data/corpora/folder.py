"""Generic loaders: any folder of audio files, or an existing manifest file."""

from __future__ import annotations

from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import (
    AUDIO_SUFFIXES,
    PendingUtterance,
    file_ids,
    list_audio,
    probe_utterances,
)
from speechssl.data.manifest import MANIFEST_SUFFIXES, Manifest

UNKNOWN_SPEAKER = "unknown"


def load_folder(
    root: str | Path,
    label_column: str | None = None,
    speaker_from_parent: bool = False,
    split: str = "train",
    bad_files: BadFileSummary | None = None,
) -> Manifest:
    """Manifest of every audio file under ``root`` (recursive), or of a manifest file.

    Args:
        root: a folder, or a ``.csv``/``.jsonl`` manifest (then loaded as is).
        label_column: if set, a label column of this name holds each file's parent folder
            name (e.g. ``label_column="keyword"`` for ``root/yes/001.wav``).
        speaker_from_parent: take the speaker from the parent folder name instead of
            ``"unknown"``.
        split: split of every row.
        bad_files: where to record audio files whose header is bad, and entries that are no
            readable file (broken links, FIFOs, unreadable subfolders), leaving them out (see
            :func:`~speechssl.data.corpora.common.list_audio` and ``probe_utterances``); ``None`` raises.
            Unused for a manifest, whose rows already hold their durations.

    Ids are the paths relative to ``root`` without suffix (``yes/001``), with it where two
    files differ only by suffix (``x.wav``, ``x.flac``; :func:`~speechssl.data.corpora.common.file_ids`).

    Raises:
        FileNotFoundError: ``root`` does not exist, or the folder holds no audio files.
        AudioError: with ``bad_files=None``, an audio file whose header is bad.
    """
    root = Path(root).expanduser()
    if root.is_file() and root.suffix.lower() in MANIFEST_SUFFIXES:
        return Manifest.load(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"corpus 'folder': {root} is neither a folder of audio files nor a .csv/.jsonl manifest"
        )
    files = list_audio(root, bad_files)
    if not files:
        raise FileNotFoundError(f"corpus 'folder': no audio files ({', '.join(AUDIO_SUFFIXES)}) under {root}")
    candidates = []
    for path, utterance_id in zip(files, file_ids(root, files), strict=True):
        labels = {label_column: path.parent.name} if label_column else {}
        candidates.append(
            PendingUtterance(
                path,
                id=utterance_id,
                speaker=path.parent.name if speaker_from_parent else UNKNOWN_SPEAKER,
                split=split,
                labels=labels,
            )
        )
    return Manifest(probe_utterances(candidates, bad_files))


def load_manifest_file(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """The manifest saved at ``root`` (``.csv`` or ``.jsonl``); see :meth:`Manifest.load`.

    Its rows already hold their durations, so no header is read and ``bad_files`` (taken
    for a loader signature like the others) is left unchanged; check the files with
    :func:`~speechssl.data.validate.validate_manifest`.
    """
    return Manifest.load(root)
