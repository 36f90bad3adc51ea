"""VoxCeleb1 speaker identification, read in its native layout.

Nagrani, Chung & Zisserman, *VoxCeleb: a large-scale speaker identification dataset*,
Interspeech 2017. Audio is ``wav/{speaker}/{youtube id}/{NNNNN}.wav`` (16 kHz), either
directly under the root or in the two extracted archives (``vox1_dev_wav/wav``,
``vox1_test_wav/wav``: any ``*/wav`` folder, as s3prl searches). ``iden_split.txt`` assigns
every file to identification set 1 (``train``), 2 (``valid``) or 3 (``test``), each line
``{set} {speaker}/{youtube id}/{NNNNN}.wav``; the 1,251 speakers are in every set.
"""

from __future__ import annotations

from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import (
    PendingUtterance,
    probe_utterances,
    require_folder,
    warn_missing_listed,
)
from speechssl.data.manifest import Manifest

CORPUS = "voxceleb1"
SPLIT_FILE = "iden_split.txt"
SPLIT_OF_SET = {"1": "train", "2": "valid", "3": "test"}


def wav_folders(root: Path, corpus: str = CORPUS) -> list[Path]:
    """The ``wav`` folders of a VoxCeleb1 root: ``root/wav`` and every ``root/*/wav`` (the extracted archives).

    Raises:
        FileNotFoundError: none, naming ``corpus`` and ``root``.
    """
    folders = [folder for folder in [root / "wav", *sorted(root.glob("*/wav"))] if folder.is_dir()]
    if not folders:
        raise FileNotFoundError(f"corpus {corpus!r}: no wav/ or */wav/ folder under {root}")
    return folders


def load_voxceleb1(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of VoxCeleb1's identification split at ``root`` (the folder holding ``iden_split.txt``).

    Ids are the list's paths without ``.wav`` (``id10001/1zcIwhmdeo4/00001``); the speaker
    is their first part and the label column is ``speaker`` itself. A folder holding part of
    the corpus is read as it is: files the list names but no ``wav`` folder holds are counted
    and named in a warning (:func:`~speechssl.data.corpora.common.warn_missing_listed`).

    Raises:
        FileNotFoundError: no such folder, no ``iden_split.txt`` or no ``wav`` folder.
        ValueError: a line that is not ``{1|2|3} {speaker}/{video}/{file}.wav``.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, CORPUS)
    split_file = root / SPLIT_FILE
    if not split_file.is_file():
        raise FileNotFoundError(f"corpus {CORPUS!r}: expected {SPLIT_FILE} at {root}, found none")
    folders = wav_folders(root, CORPUS)
    candidates, missing = [], []
    for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        relative = fields[1] if len(fields) == 2 else ""
        if fields[0] not in SPLIT_OF_SET or len(Path(relative).parts) != 3 or not relative.endswith(".wav"):
            raise ValueError(
                f"corpus {CORPUS!r}: {split_file}, line {number}: expected "
                f"'{{1|2|3}} {{speaker}}/{{video}}/{{file}}.wav', found {line.strip()!r}"
            )
        path = next((folder / relative for folder in folders if (folder / relative).is_file()), None)
        if path is None:
            missing.append(relative)
            continue
        candidates.append(
            PendingUtterance(
                path,
                id=relative.removesuffix(".wav"),
                speaker=Path(relative).parts[0],
                split=SPLIT_OF_SET[fields[0]],
            )
        )
    warn_missing_listed(CORPUS, root, {SPLIT_FILE: missing})
    return Manifest(probe_utterances(candidates, bad_files))
