"""RAVDESS (speech and song audio), read in its native layout.

Livingstone & Russo, *The Ryerson Audio-Visual Database of Emotional Speech and Song
(RAVDESS)*, PLoS ONE 13(5), 2018, https://zenodo.org/record/1188976 (CC BY-NC-SA 4.0).
Files are ``Actor_XX/MM-VV-EE-II-SS-RR-AA.wav`` (``.flac`` accepted too), where the seven
fields are modality, vocal channel, emotion, intensity, statement, repetition and actor;
odd-numbered actors are male, even-numbered female.

Splits: actor-disjoint (speaker-independent emotion recognition): actors 1–16 ``train``,
17–20 ``valid``, 21–24 ``test``; each part is half female, half male.
"""

from __future__ import annotations

from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.manifest import Manifest

MODALITIES = {"01": "full-av", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "kids", "02": "dogs"}  # "Kids/Dogs are talking/sitting by the door"
REPETITIONS = {"01": "1", "02": "2"}
AUDIO_SUFFIXES = (".wav", ".flac")
FIELD_NAMES = ("modality", "vocal_channel", "emotion", "intensity", "statement", "repetition")


def ravdess_split(actor: int) -> str:
    """``train`` for actors 1–16, ``valid`` for 17–20, ``test`` for 21–24."""
    if actor <= 16:
        return "train"
    if actor <= 20:
        return "valid"
    return "test"


def parse_ravdess_name(path: Path) -> dict[str, str]:
    """Labels from a RAVDESS file name: the six coded fields, ``actor`` and ``gender``.

    Raises:
        ValueError: the name is not seven known two-digit codes.
    """
    codes = path.stem.split("-")
    tables = (MODALITIES, VOCAL_CHANNELS, EMOTIONS, INTENSITIES, STATEMENTS, REPETITIONS)
    if len(codes) != 7 or not all(c.isdigit() and len(c) == 2 for c in codes):
        raise ValueError(f"corpus 'ravdess': {path}: expected a name like 03-01-06-01-02-01-12.wav")
    labels = {}
    for name, table, code in zip(FIELD_NAMES, tables, codes[:6], strict=True):
        if code not in table:
            raise ValueError(
                f"corpus 'ravdess': {path}: {name} code {code!r} unknown (expected one of {sorted(table)})"
            )
        labels[name] = table[code]
    actor = int(codes[6])
    if not 1 <= actor <= 24:
        raise ValueError(f"corpus 'ravdess': {path}: actor code {codes[6]!r} outside 01–24")
    labels["actor"] = codes[6]
    labels["gender"] = "m" if actor % 2 else "f"
    return labels


def load_ravdess(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of RAVDESS at ``root`` (the folder holding ``Actor_01`` ... ``Actor_24``).

    Speakers are ``Actor_XX``. Label columns: ``modality``, ``vocal_channel``, ``emotion``
    (name), ``intensity``, ``statement``, ``repetition``, ``actor``, ``gender``. A file whose
    header is bad is recorded in ``bad_files`` and left out (see
    :func:`~speechssl.data.corpora.common.probe_utterances`).

    Raises:
        FileNotFoundError: no such folder, or no audio files in it.
        ValueError: an audio file whose name is not a RAVDESS code.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, "ravdess")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"corpus 'ravdess': no .wav or .flac files under {root}")
    candidates = []
    for path in files:
        labels = parse_ravdess_name(path)
        candidates.append(
            PendingUtterance(
                path,
                id=path.stem,
                speaker=f"Actor_{labels['actor']}",
                split=ravdess_split(int(labels["actor"])),
                labels=labels,
            )
        )
    return Manifest(probe_utterances(candidates, bad_files))
