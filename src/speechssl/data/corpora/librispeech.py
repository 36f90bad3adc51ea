"""LibriSpeech (and Mini LibriSpeech), read in its native layout.

Panayotov et al., *LibriSpeech: an ASR corpus based on public domain audio books*,
ICASSP 2015, https://www.openslr.org/12 (CC BY 4.0). Layout:
``LibriSpeech/{subset}/{speaker}/{chapter}/{speaker}-{chapter}-{utterance}.flac`` with one
``{speaker}-{chapter}.trans.txt`` per chapter folder and ``LibriSpeech/SPEAKERS.TXT``
giving each reader's sex.

Splits: LibriSpeech's subsets are speaker-disjoint, which rules out speaker
identification, so every utterance gets a deterministic per-speaker split instead: each
speaker's utterances are put in :func:`~speechssl.data.splits.hash_order` (seed 0) and the first
``round(n * test_fraction)`` go to ``test``, the next ``round(n * valid_fraction)`` to
``valid`` and the rest to ``train`` (defaults 15 % / 15 % / 70 %). The original subset is
kept in the ``subset`` column; ``split_by="subset"`` uses LibriSpeech's own split instead
(``train-*`` train, ``dev-*`` valid, ``test-*`` test), as SUPERB's ASR and PR tasks do with
train-clean-100, dev-clean and test-clean.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.manifest import Manifest
from speechssl.data.splits import assign_splits

SUBSET_PATTERN = re.compile(r"^(train|dev|test)-(clean|other)(-\d+)?$")
AUDIO_SUFFIXES = (".flac", ".wav")
SUBSET_SPLITS = {"train": "train", "dev": "valid", "test": "test"}


def find_subsets(root: Path) -> list[Path]:
    """Subset folders at ``root``: itself, its children, or the children of ``root/LibriSpeech``."""
    if SUBSET_PATTERN.match(root.name):
        return [root]
    corpus_root = root / "LibriSpeech" if (root / "LibriSpeech").is_dir() else root
    return sorted(p for p in corpus_root.iterdir() if p.is_dir() and SUBSET_PATTERN.match(p.name))


def read_speakers(path: Path) -> dict[str, str]:
    """Speaker id -> ``"f"``/``"m"`` from a ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``)."""
    sexes = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith(";"):
            continue
        fields = [field.strip() for field in line.split("|")]
        if len(fields) < 2 or fields[1].upper() not in ("F", "M"):
            raise ValueError(
                f"{path}, line {number}: expected 'ID | SEX | ...' with SEX F or M, found {line!r}"
            )
        sexes[fields[0]] = fields[1].lower()
    return sexes


def load_librispeech(
    root: str | Path,
    subsets: Sequence[str] | None = None,
    valid_fraction: float = 0.15,
    test_fraction: float = 0.15,
    bad_files: BadFileSummary | None = None,
    split_by: Literal["speaker", "subset"] = "speaker",
) -> Manifest:
    """Manifest of the LibriSpeech subsets at ``root``.

    Args:
        root: a ``LibriSpeech/`` folder, its parent, or one subset folder (``train-clean-5``).
        subsets: subset names to keep (default: every subset found).
        valid_fraction: share of each speaker's utterances in ``valid``.
        test_fraction: share of each speaker's utterances in ``test``.
        bad_files: where to record audio files whose header is bad, leaving them out
            (see :func:`~speechssl.data.corpora.common.probe_utterances`); ``None`` raises.
        split_by: ``speaker`` (each speaker's utterances split by the fractions) or
            ``subset`` (the subset's own split: ``train-*``, ``dev-*``, ``test-*``; the
            fractions are not used).

    Label columns: ``transcript``, ``chapter``, ``subset`` and, when ``SPEAKERS.TXT`` is
    found next to the subset folders, ``gender`` (``"f"``/``"m"``).

    Raises:
        FileNotFoundError: no subset folder, or an utterance in a transcript has no audio.
        ValueError: bad fractions, a malformed transcript line, or a speaker missing from
            ``SPEAKERS.TXT``.
        AudioError: with ``bad_files=None``, an audio file whose header is bad.
    """
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"corpus 'librispeech': valid_fraction and test_fraction must be >= 0 and sum below 1, "
            f"found {valid_fraction} and {test_fraction}"
        )
    if split_by not in ("speaker", "subset"):
        raise ValueError(f"corpus 'librispeech': split_by must be 'speaker' or 'subset', found {split_by!r}")
    root = require_folder(root, "librispeech")
    folders = find_subsets(root)
    if subsets is not None:
        unknown = sorted(set(subsets) - {p.name for p in folders})
        if unknown:
            raise FileNotFoundError(
                f"corpus 'librispeech': subset {unknown[0]!r} not found under {root} "
                f"(found: {', '.join(p.name for p in folders) or 'none'})"
            )
        folders = [p for p in folders if p.name in subsets]
    if not folders:
        raise FileNotFoundError(
            f"corpus 'librispeech': no subset folder (e.g. train-clean-100) found at {root}"
        )
    speakers_file = folders[0].parent / "SPEAKERS.TXT"
    sexes = read_speakers(speakers_file) if speakers_file.is_file() else None

    entries = []  # (id, audio path, speaker, chapter, subset, transcript)
    for folder in folders:
        for transcript_file in sorted(folder.glob("*/*/*.trans.txt")):
            for number, line in enumerate(transcript_file.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                utt, _, text = line.partition(" ")
                parts = utt.split("-")
                if len(parts) != 3 or not text:
                    raise ValueError(
                        f"{transcript_file}, line {number}: expected 'SPEAKER-CHAPTER-UTTERANCE TEXT', found {line!r}"
                    )
                audio = next(
                    (
                        p
                        for p in (transcript_file.parent / f"{utt}{s}" for s in AUDIO_SUFFIXES)
                        if p.is_file()
                    ),
                    None,
                )
                if audio is None:
                    raise FileNotFoundError(
                        f"{transcript_file}, line {number}: no audio file {utt}.flac next to the transcript"
                    )
                if sexes is not None and parts[0] not in sexes:
                    raise ValueError(f"{speakers_file}: speaker {parts[0]} (of {audio}) is not listed")
                entries.append((utt, audio, parts[0], parts[1], folder.name, text.strip()))

    by_speaker: dict[str, list[str]] = defaultdict(list)
    for utt, _, speaker, *_ in entries:
        by_speaker[speaker].append(utt)
    splits: dict[str, str] = {}
    if split_by == "subset":
        splits = {utt: SUBSET_SPLITS[subset.split("-")[0]] for utt, _, _, _, subset, _ in entries}
    else:
        for ids in by_speaker.values():
            splits.update(assign_splits(ids, valid_fraction, test_fraction, seed=0))

    candidates = []
    for utt, audio, speaker, chapter, subset, text in entries:
        labels = {"transcript": text, "chapter": chapter, "subset": subset}
        if sexes is not None:
            labels["gender"] = sexes[speaker]
        candidates.append(PendingUtterance(audio, id=utt, speaker=speaker, split=splits[utt], labels=labels))
    return Manifest(probe_utterances(candidates, bad_files))
