"""Free Spoken Digit Dataset (FSDD), read in its native layout.

Jakobovski et al., *Free Spoken Digit Dataset*, https://github.com/Jakobovski/free-spoken-digit-dataset
(CC BY-SA 4.0). Files are ``recordings/{digit}_{speaker}_{index}.wav``, 8 kHz mono; every
speaker says every digit 50 times (index 0–49).

Splits: the corpus's official test split is index 0–4 of every (digit, speaker). We add a
deterministic validation split, index 5–9; index 10 and above is train. All splits hold
every speaker and digit, so both keyword spotting and speaker identification work.
"""

from __future__ import annotations

import re
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.manifest import Manifest

FILE_PATTERN = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9]+)_(?P<index>\d+)$")
TEST_INDICES = range(0, 5)
VALID_INDICES = range(5, 10)
GENDER = "m"  # every FSDD speaker is male (shared data README; corpus metadata)


def fsdd_split(index: int) -> str:
    """``test`` for index 0–4 (official), ``valid`` for 5–9, else ``train``."""
    if index in TEST_INDICES:
        return "test"
    if index in VALID_INDICES:
        return "valid"
    return "train"


def load_fsdd(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of FSDD at ``root`` (the FSDD folder or its ``recordings/`` folder).

    Label columns: ``keyword`` (the digit, ``"0"``–``"9"``), ``gender`` (``"m"``). A recording
    whose header is bad is recorded in ``bad_files`` and left out (see
    :func:`~speechssl.data.corpora.common.probe_utterances`).

    Raises:
        FileNotFoundError: no such folder, or it holds no ``.wav`` recordings.
        ValueError: a ``.wav`` file whose name is not ``{digit}_{speaker}_{index}.wav``.
        AudioError: with ``bad_files=None``, a recording whose header is bad.
    """
    root = require_folder(root, "fsdd")
    recordings = root / "recordings" if (root / "recordings").is_dir() else root
    files = sorted(recordings.glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"corpus 'fsdd': no .wav recordings in {recordings}")
    candidates = []
    for path in files:
        match = FILE_PATTERN.match(path.stem)
        if match is None:
            raise ValueError(f"corpus 'fsdd': {path}: expected a name like 7_jackson_32.wav")
        candidates.append(
            PendingUtterance(
                path,
                id=path.stem,
                speaker=match["speaker"],
                split=fsdd_split(int(match["index"])),
                labels={"keyword": match["digit"], "gender": GENDER},
            )
        )
    return Manifest(probe_utterances(candidates, bad_files))
