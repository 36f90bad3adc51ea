"""lhotse CutSets read as manifests, so every corpus recipe lhotse has feeds speechssl.

Żelasko et al., *Lhotse: a speech data representation library for the modern deep learning
ecosystem* (2021), https://github.com/lhotse-speech/lhotse. A CutSet file (``cuts.jsonl.gz``,
as written by ``lhotse prepare ...`` and ``CutSet.to_file``) is read with lhotse's own API.
Each cut becomes one row whose ``start``/``end`` are the cut's segment of its recording's
file, so only the segment is read and nothing is re-encoded.

A cut is used when its recording has a single channel stored in one local file (source type
``file``) without transforms. Other cuts (multi-channel, mixed or padding cuts, URL, memory or
command sources, transformed recordings such as speed perturbation) are recorded as bad files
and left out: nothing is ever downloaded or run.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from speechssl.data.audio import AudioError, BadFile, BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances
from speechssl.data.manifest import REQUIRED_COLUMNS, SEGMENT_COLUMNS, Manifest, Utterance

CUTSET_SUFFIXES = (".jsonl", ".jsonl.gz")
CUT_TYPES = ("MonoCut", "MultiCut", "MixedCut", "PaddingCut")
SPLIT_FIELD = "split"  # a cut's (or its first supervision's) custom field naming its split
END_TOLERANCE = 0.01  # seconds a cut may run past the end of its file (lhotse rounds durations)


def is_cutset_file(path: str | Path) -> bool:
    """Whether ``path`` is a lhotse CutSet in JSON Lines (its first line is a cut), read without lhotse."""
    path = Path(path).expanduser()
    if not (path.is_file() and path.name.lower().endswith(CUTSET_SUFFIXES)):
        return False
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as stream:
            first = json.loads(stream.readline())
    except (OSError, UnicodeDecodeError, EOFError, ValueError):
        return False
    return isinstance(first, dict) and (
        first.get("type") in CUT_TYPES or {"recording", "supervisions", "duration"} <= set(first)
    )


def _unusable(cut: Any) -> str | None:
    """Why ``cut`` cannot be a row, or ``None`` when it is a single-channel cut of one local file."""
    kind = type(cut).__name__
    if kind != "MonoCut":
        return f"{kind} is not supported (expected a single-channel MonoCut)"
    if not cut.has_recording:
        return "cut has no recording"
    recording = cut.recording
    if recording.num_channels != 1:
        return f"recording {recording.id} has {recording.num_channels} channels (expected 1)"
    if len(recording.sources) != 1:
        return f"recording {recording.id} has {len(recording.sources)} sources (expected 1)"
    source = recording.sources[0]
    if source.type != "file":
        return f"recording {recording.id}: source type {source.type!r} is not read (expected 'file')"
    if recording.transforms:
        return f"recording {recording.id} has transforms (e.g. speed perturbation), which are not applied"
    return None


def _labels(cut: Any) -> dict[str, str]:
    """Label columns of ``cut``: ``transcript`` (its supervisions' texts joined), the first
    supervision's ``language``/``gender``, and the custom fields of the first supervision and the cut."""
    labels: dict[str, str] = {}
    texts = [sup.text.strip() for sup in cut.supervisions if sup.text and sup.text.strip()]
    if texts:
        labels["transcript"] = " ".join(texts)
    first = cut.supervisions[0] if cut.supervisions else None
    customs = [first.custom if first is not None else None, cut.custom]
    if first is not None:
        labels.update({name: getattr(first, name) for name in ("language", "gender") if getattr(first, name)})
    for custom in customs:
        for name, value in (custom or {}).items():
            if name != SPLIT_FIELD and value is not None and not isinstance(value, dict | list):
                labels[name] = str(value)
    reserved = {*REQUIRED_COLUMNS, *SEGMENT_COLUMNS}
    return {name: value for name, value in labels.items() if name not in reserved}


def _split(cut: Any, default: str) -> str:
    first = cut.supervisions[0] if cut.supervisions else None
    for custom in (cut.custom, first.custom if first is not None else None):
        if custom and custom.get(SPLIT_FIELD):
            return str(custom[SPLIT_FIELD])
    return default


def _load_cuts(path: Path) -> Any:
    try:
        from lhotse import CutSet, load_manifest, load_manifest_lazy
    except ImportError as err:
        raise ImportError("lhotse CutSets need the lhotse package: pip install 'speechssl[lhotse]'") from err
    lazy = path.name.lower().endswith(CUTSET_SUFFIXES)
    try:
        cuts = load_manifest_lazy(path) if lazy else load_manifest(path)
    except Exception as err:  # lhotse raises many kinds on a malformed file
        raise ValueError(f"corpus 'lhotse': {path}: not a readable lhotse manifest ({err})") from err
    if not isinstance(cuts, CutSet):
        raise ValueError(f"corpus 'lhotse': {path}: expected a CutSet, found {type(cuts).__name__}")
    return cuts


def _each_cut(cuts: Any, path: Path) -> Iterator[Any]:
    """The cuts of a lazily read CutSet, a malformed later line becoming an error naming ``path``."""
    iterator = iter(cuts)
    while True:
        try:
            cut = next(iterator)
        except StopIteration:
            return
        except Exception as err:  # lhotse raises many kinds on a malformed line
            raise ValueError(f"corpus 'lhotse': {path}: not a readable lhotse manifest ({err})") from err
        yield cut


def load_lhotse(root: str | Path, bad_files: BadFileSummary | None = None, split: str = "train") -> Manifest:
    """Manifest of the lhotse CutSet file ``root`` (``.jsonl``/``.jsonl.gz``, or any file lhotse loads).

    Each usable cut (see the module docstring) is a row: ``id`` the cut id, ``path`` its
    recording's file (a relative path is taken from the working directory, as lhotse does), ``start = cut.start``, ``end = cut.start + cut.duration``, ``duration =
    cut.duration``, ``sample_rate`` the file's, ``speaker`` the first supervision's (the cut id
    when there is none), ``split`` the cut's (or its first supervision's) custom ``split`` field,
    else ``split``. Label columns: ``transcript``, ``language``, ``gender`` and custom fields, each
    present when any cut has it; a cut without it gets ``""``. Each recording file's header is
    read once; a missing or unreadable file, or a cut running past its file's end, is bad.

    Args:
        root: the CutSet file.
        bad_files: where to record unusable cuts and bad files, which are left out; ``None``
            stops at the first.
        split: the split of cuts that do not name one.

    Raises:
        ImportError: the ``lhotse`` package is not installed (``pip install speechssl[lhotse]``).
        ValueError: ``root`` is not a CutSet, or (with ``bad_files=None``) an unusable cut.
        AudioError: with ``bad_files=None``, a recording file whose header is bad.
    """
    root = Path(root).expanduser()
    cuts = _load_cuts(root)
    usable: list[Any] = []
    files: dict[Path, str] = {}  # recording file -> the id of the first cut reading it
    for cut in _each_cut(cuts, root):
        reason = _unusable(cut)
        if reason is not None:
            path = str(cut.recording.sources[0].source) if getattr(cut, "has_recording", False) else str(root)
            if bad_files is None:
                raise ValueError(f"corpus 'lhotse': {root}: cut {cut.id}: {reason}")
            bad_files.add(BadFile(id=cut.id, path=path, reason=reason))
            continue
        usable.append(cut)
        files.setdefault(Path(cut.recording.sources[0].source).expanduser().absolute(), cut.id)
    headers = {
        row.path: row
        for row in probe_utterances(
            [PendingUtterance(path, id=cut_id, speaker="", split="") for path, cut_id in files.items()],
            bad_files,
        )
    }
    rows: list[Utterance] = []
    labels: list[dict[str, str]] = []
    for cut in usable:
        path = Path(cut.recording.sources[0].source).expanduser().absolute()
        header = headers.get(path)
        if header is None:
            continue  # its file is bad, recorded once under the first cut reading it
        end = cut.start + cut.duration
        if end > header.duration + END_TOLERANCE:
            error = AudioError(
                path, f"cut {cut.id} ends at {end:.3f} s, past the file's {header.duration:.3f} s"
            )
            if bad_files is None:
                raise error
            bad_files.add(BadFile(id=cut.id, path=str(path), reason=error.reason))
            continue
        first = cut.supervisions[0] if cut.supervisions else None
        rows.append(
            Utterance(
                id=cut.id,
                path=path,
                duration=cut.duration,
                sample_rate=header.sample_rate,
                speaker=(first.speaker if first is not None and first.speaker else cut.id),
                split=_split(cut, split),
                start=cut.start,
                end=min(end, header.duration),
            )
        )
        labels.append(_labels(cut))
    columns = list(dict.fromkeys(name for row_labels in labels for name in row_labels))
    return Manifest(
        Utterance(
            id=row.id,
            path=row.path,
            duration=row.duration,
            sample_rate=row.sample_rate,
            speaker=row.speaker,
            split=row.split,
            labels={name: row_labels.get(name, "") for name in columns},
            start=row.start,
            end=row.end,
        )
        for row, row_labels in zip(rows, labels, strict=True)
    )
