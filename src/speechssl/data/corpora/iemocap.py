"""IEMOCAP, read in its native layout for SUPERB's four-class emotion recognition.

Busso et al., *IEMOCAP: Interactive emotional dyadic motion capture database*, Language
Resources and Evaluation 42, 2008. ``IEMOCAP_full_release/Session{1..5}`` each hold
``sentences/wav/{dialog}/{utterance}.wav`` and ``dialog/EmoEvaluation/{dialog}.txt``, whose
lines ``[start - end]\t{utterance}\t{label}\t[V, A, D]`` give every utterance's consensus
label. As SUPERB (Yang et al. 2021; s3prl v0.4 ``downstream/emotion``) and most of the
literature, only ``neu``, ``hap``, ``ang`` and ``sad`` are kept, with ``exc`` (excited)
merged into ``hap``; improvised and scripted dialogs alike.
"""

from __future__ import annotations

import re
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import (
    PendingUtterance,
    probe_utterances,
    require_folder,
    warn_missing_listed,
)
from speechssl.data.manifest import Manifest

CORPUS = "iemocap"
SESSIONS = ("Session1", "Session2", "Session3", "Session4", "Session5")
EMOTION_OF_LABEL = {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}
LINE = re.compile(r"^\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\t(?P<utterance>Ses\d\d[FM]_\S+)\t(?P<label>\w+)\t\[")


def _evaluation_labels(path: Path) -> dict[str, str]:
    """Utterance -> consensus label of one ``EmoEvaluation`` file (its bracketed summary lines)."""
    labels = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = LINE.match(line)
        if match:
            labels[match["utterance"]] = match["label"]
    return labels


def load_iemocap(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of IEMOCAP's 4-class emotion utterances at ``root`` (``IEMOCAP_full_release``).

    Ids are utterance names (``Ses01F_impro01_F000``); the speaker is the session and the
    speaker's gender (``Ses01F``: the last part's first letter). Label columns:
    ``emotion`` (``neu``, ``hap``, ``ang``, ``sad``), ``session`` (``1``..``5``) and
    ``gender``. Every row's split is ``train``: tasks make leave-one-session-out folds.
    Utterances labelled but without their wav are counted and named in a warning
    (:func:`~speechssl.data.corpora.common.warn_missing_listed`) and left out.

    Raises:
        FileNotFoundError: no such folder, or a missing ``Session{1..5}`` or ``EmoEvaluation``
            folder.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, CORPUS)
    missing = [session for session in SESSIONS if not (root / session / "dialog" / "EmoEvaluation").is_dir()]
    if missing:
        raise FileNotFoundError(
            f"corpus {CORPUS!r}: expected {', '.join(f'{s}/dialog/EmoEvaluation' for s in missing)} "
            f"under {root} (leave-one-session-out needs all five sessions)"
        )
    candidates, missing = [], []
    for number, session in enumerate(SESSIONS, start=1):
        for evaluation in sorted((root / session / "dialog" / "EmoEvaluation").glob("*.txt")):
            for utterance, label in sorted(_evaluation_labels(evaluation).items()):
                if label not in EMOTION_OF_LABEL:
                    continue
                path = root / session / "sentences" / "wav" / evaluation.stem / f"{utterance}.wav"
                if not path.is_file():
                    missing.append(path.relative_to(root).as_posix())
                    continue
                gender = utterance.rsplit("_", 1)[-1][0]
                candidates.append(
                    PendingUtterance(
                        path,
                        id=utterance,
                        speaker=f"{utterance[:5]}{gender}",
                        split="train",
                        labels={
                            "emotion": EMOTION_OF_LABEL[label],
                            "session": str(number),
                            "gender": {"F": "female", "M": "male"}[gender],
                        },
                    )
                )
    warn_missing_listed(CORPUS, root, {"dialog/EmoEvaluation labels": missing})
    return Manifest(probe_utterances(candidates, bad_files))
