"""Any folder whose file names (or paths) hold the labels: a pattern names the fields.

A corpus with no loader of its own usually codes its labels in the file names, e.g.
CREMA-D's ``1001_DFA_ANG_XX.wav`` (speaker, sentence, emotion, intensity). A *pattern*
says where each field is, either as a format with ``{field}`` placeholders
(``{speaker}_{sentence}_{emotion}_{level}``; ``{field:N}`` for a field of exactly ``N``
characters, ``{}`` for a part that is matched but not kept) or as a regular expression
with named groups (``(?P<speaker>\\d+)_...``). It is matched against the end of each
file's path relative to the root, without the suffix, so ``{keyword}/{speaker}_nohash_{}``
takes the keyword from the parent folder. ``speaker`` fills the speaker column, every
other field a label column.

:data:`NAMED_PATTERNS` ships the layouts of common corpora, with each corpus's codes
mapped to shared label names (``ANG``, ``a``, ``W`` → ``angry``), so that emotion labels
agree across corpora as they do with RAVDESS (read by its own loader,
:mod:`.ravdess`):

- ``crema-d``: Cao et al., *CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset*,
  IEEE Trans. Affective Computing 5(4), 2014: ``1001_DFA_ANG_XX.wav``.
- ``tess``: Pichora-Fuller & Dupuis, *Toronto Emotional Speech Set (TESS)*, 2020:
  ``OAF_back_angry.wav``.
- ``savee``: Haq & Jackson, *Surrey Audio-Visual Expressed Emotion (SAVEE)*, 2009:
  ``DC_a01.wav``, or ``AudioData/DC/a01.wav`` as distributed.
- ``emodb``: Burkhardt et al., *A Database of German Emotional Speech*, Interspeech 2005:
  ``03a01Fa.wav`` (speaker, text, emotion letter, version).
- ``speech-commands``: Warden, arXiv:1804.03209, 2018: ``word/speaker_nohash_n.wav``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from speechssl.data.audio import BadFile, BadFileSummary
from speechssl.data.corpora.common import (
    PendingUtterance,
    file_ids,
    list_audio,
    probe_utterances,
    require_folder,
)
from speechssl.data.manifest import REQUIRED_COLUMNS, Manifest

UNKNOWN_SPEAKER = "unknown"
_PLACEHOLDER = re.compile(r"\{(\w*)(?::(\d+))?\}")


@dataclass(frozen=True)
class NamedPattern:
    """A corpus's file-name layout and the label names its codes stand for.

    Attributes:
        pattern: a format or regular expression (see the module docstring).
        codes: per field, corpus code -> shared label name (codes not listed are kept as is).
        example: a file name of the corpus, for help texts and tests.
    """

    pattern: str
    codes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    example: str = ""


NAMED_PATTERNS: dict[str, NamedPattern] = {
    "crema-d": NamedPattern(
        "{speaker}_{sentence}_{emotion}_{level}",
        {
            "emotion": {
                "ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral", "SAD": "sad",
            },
            "level": {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"},
        },
        "1001_DFA_ANG_XX.wav",
    ),
    "tess": NamedPattern(
        "{speaker}_{word}_{emotion}",
        {"emotion": {"fear": "fearful", "ps": "surprised"}},
        "OAF_back_angry.wav",
    ),
    "savee": NamedPattern(
        r"(?P<speaker>[A-Za-z]+)[_/](?P<emotion>[a-z]+?)(?P<sentence>\d+)",
        {
            "emotion": {
                "a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad",
                "su": "surprised",
            }
        },
        "DC_a01.wav",
    ),
    "emodb": NamedPattern(
        "{speaker:2}{text:3}{emotion:1}{version:1}",
        {
            "emotion": {
                "W": "angry", "L": "bored", "E": "disgust", "A": "fearful", "F": "happy", "T": "sad", "N": "neutral",
            }
        },
        "03a01Fa.wav",
    ),
    "speech-commands": NamedPattern("{keyword}/{speaker}_nohash_{}", {}, "yes/0a7c2a8d_nohash_0.wav"),
}  # fmt: skip


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The regular expression of a format (``{field}``, ``{field:N}``, ``{}``) or of a regex with
    named groups, anchored at the end of the path and at a folder boundary.

    Raises:
        ValueError: a pattern with no named field, a field that names a manifest column other
            than ``speaker``, or a regular expression that does not compile.
    """
    if "(?P<" in pattern:
        body = pattern
    else:
        parts, start = [], 0
        for match in _PLACEHOLDER.finditer(pattern):
            parts.append(re.escape(pattern[start : match.start()]))
            name, width = match.group(1), match.group(2)
            any_text = f"[^/]{{{width}}}" if width else "[^/]+?"
            parts.append(f"(?P<{name}>{any_text})" if name else f"(?:{any_text})")
            start = match.end()
        body = "".join(parts) + re.escape(pattern[start:])
    try:
        compiled = re.compile(f"(?:^|/){body}$")
    except re.error as err:
        raise ValueError(f"pattern {pattern!r}: not a valid regular expression ({err})") from None
    names = set(compiled.groupindex)
    if not names:
        raise ValueError(
            f"pattern {pattern!r}: expected at least one named field, e.g. {{speaker}}_{{emotion}}"
        )
    clash = sorted(names & (set(REQUIRED_COLUMNS) - {"speaker"}))
    if clash:
        raise ValueError(f"pattern {pattern!r}: field {clash[0]!r} is a manifest column; rename it")
    return compiled


def resolve_pattern(pattern: str) -> NamedPattern:
    """A name of :data:`NAMED_PATTERNS`, or a format/regular expression of the user's own."""
    if pattern in NAMED_PATTERNS:
        return NAMED_PATTERNS[pattern]
    if "{" not in pattern and "(?P<" not in pattern:
        raise ValueError(
            f"pattern {pattern!r}: expected one of {', '.join(NAMED_PATTERNS)}, a format such as "
            "'{speaker}_{emotion}_{}' or a regular expression with named groups (corpora with a loader "
            "of their own, e.g. ravdess, are read by that loader)"
        )
    return NamedPattern(pattern)


def parse_path(relative: str, pattern: str | NamedPattern) -> dict[str, str] | None:
    """The fields of ``relative`` (a path relative to the corpus root, without suffix), with the
    named pattern's codes mapped to label names; ``None`` when it does not match."""
    named = resolve_pattern(pattern) if isinstance(pattern, str) else pattern
    match = compile_pattern(named.pattern).search(relative)
    if match is None:
        return None
    return {
        name: named.codes.get(name, {}).get(value, value)
        for name, value in match.groupdict().items()
        if value is not None
    }


def load_pattern(
    root: str | Path, pattern: str, split: str = "train", bad_files: BadFileSummary | None = None
) -> Manifest:
    """Manifest of every audio file under ``root``, speaker and labels read by ``pattern``.

    Args:
        root: the corpus folder.
        pattern: a name of :data:`NAMED_PATTERNS` or a format/regular expression (module docstring).
        split: split of every row (re-split with :func:`~speechssl.data.splits.group_disjoint_split`
            or :func:`~speechssl.data.splits.with_fold_column`, ``speechssl data split``).
        bad_files: where to record files whose name does not match the pattern or whose header is
            bad, leaving them out; ``None`` raises at the first.

    Ids are the paths relative to ``root`` without suffix (with it where stems collide,
    :func:`~speechssl.data.corpora.common.file_ids`).

    Raises:
        FileNotFoundError: no such folder, or no audio file in it.
        ValueError: a bad pattern, or (with ``bad_files=None``) a file name it does not match.
    """
    root = require_folder(root, "pattern")
    named = resolve_pattern(pattern)
    compile_pattern(named.pattern)
    files = list_audio(root, bad_files)
    if not files:
        raise FileNotFoundError(f"corpus 'pattern': no audio files under {root}")
    candidates = []
    for path, utterance_id in zip(files, file_ids(root, files), strict=True):
        fields = parse_path(path.relative_to(root).with_suffix("").as_posix(), named)
        if fields is None:
            reason = f"name does not match the pattern {named.pattern!r}"
            if bad_files is None:
                raise ValueError(f"corpus 'pattern': {path}: {reason}")
            bad_files.add(BadFile(id=utterance_id, path=str(path), reason=reason))
            continue
        speaker = fields.pop("speaker", UNKNOWN_SPEAKER)
        candidates.append(
            PendingUtterance(path, id=utterance_id, speaker=speaker, split=split, labels=fields)
        )
    if not candidates:
        raise ValueError(f"corpus 'pattern': no file name under {root} matches the pattern {named.pattern!r}")
    return Manifest(probe_utterances(candidates, bad_files))
