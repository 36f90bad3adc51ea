"""The manifest: one row per utterance, the common currency of every corpus loader.

Every row has the required columns ``id, path, duration, sample_rate, speaker, split``
plus the same set of task label columns (``gender``, ``keyword``, ``emotion``,
``transcript``, ...), whose values are strings. A manifest is saved as CSV or JSON Lines
(chosen by the file suffix); audio paths inside the manifest's folder are stored
relative to it, so a corpus moved together with its manifest still loads, and other
paths are stored absolute.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechssl.storage import atomic_write_text

REQUIRED_COLUMNS = ("id", "path", "duration", "sample_rate", "speaker", "split")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
SPLITS = ("train", "valid", "test")  # the values of the split column
SEGMENT_COLUMNS = ("start", "end")  # optional: seconds of a segment of a longer recording


class ManifestError(ValueError):
    """A manifest file or row is malformed; the message names the file, line and column."""


@dataclass(frozen=True)
class Utterance:
    """One row of a manifest.

    Attributes:
        id: unique utterance id within the manifest.
        path: the audio file.
        duration: length in seconds, from the file header.
        sample_rate: the file's own sample rate in Hz.
        speaker: speaker id (``"unknown"`` when the corpus does not say).
        split: ``train``, ``valid``, ``test`` or any corpus-specific name.
        labels: task label columns, name -> value.
        start: with ``end``, the utterance is the segment ``[start, end)`` seconds of ``path``
            (read without re-encoding; ``duration`` is the segment's); ``None``: the whole file.
        end: the segment's end in seconds.
    """

    id: str
    path: Path
    duration: float
    sample_rate: int
    speaker: str
    split: str
    labels: Mapping[str, str] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.path, Path):
            object.__setattr__(self, "path", Path(self.path))
        if not self.id:
            raise ValueError(f"utterance id must be a non-empty string (path {self.path})")
        if not (math.isfinite(self.duration) and self.duration >= 0):
            raise ValueError(f"utterance {self.id}: duration must be finite and >= 0, found {self.duration}")
        if self.sample_rate <= 0:
            raise ValueError(f"utterance {self.id}: sample_rate must be > 0, found {self.sample_rate}")
        if (self.start is None) != (self.end is None):
            raise ValueError(
                f"utterance {self.id}: expected both start and end or neither, found {self.start}, {self.end}"
            )
        if self.start is not None and not (0 <= self.start < self.end < math.inf):
            raise ValueError(
                f"utterance {self.id}: expected 0 <= start < end (seconds), found {self.start}, {self.end}"
            )
        clash = sorted(set(self.labels) & {*REQUIRED_COLUMNS, *SEGMENT_COLUMNS})
        if clash:
            raise ValueError(f"utterance {self.id}: label column {clash[0]!r} clashes with a required column")
        for name, value in self.labels.items():
            if not isinstance(value, str):
                raise ValueError(
                    f"utterance {self.id}: label {name!r} must be a string, found {type(value).__name__}"
                )


class Manifest:
    """An ordered, immutable list of :class:`Utterance` rows with the same label columns.

    Args:
        rows: the utterances; ids must be unique and every row must have the same label
            column names.
    """

    def __init__(self, rows: Iterable[Utterance] = ()) -> None:
        self._rows: tuple[Utterance, ...] = tuple(rows)
        seen: set[str] = set()
        for row in self._rows:
            if row.id in seen:
                raise ValueError(f"duplicate utterance id {row.id!r} ({row.path})")
            seen.add(row.id)
        self._label_columns: tuple[str, ...] = tuple(self._rows[0].labels) if self._rows else ()
        expected = set(self._label_columns)
        for row in self._rows:
            if set(row.labels) != expected:
                raise ValueError(
                    f"utterance {row.id}: label columns {sorted(row.labels)} differ from "
                    f"the manifest's {sorted(expected)}"
                )

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._rows)

    def __getitem__(self, index: int) -> Utterance:
        return self._rows[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Manifest):
            return NotImplemented
        return self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        splits = ", ".join(f"{name}={count}" for name, count in self.counts("split").items())
        return f"Manifest({len(self)} utterances; splits: {splits or 'none'}; labels: {list(self._label_columns)})"

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Names of the task label columns, in file order."""
        return self._label_columns

    @property
    def columns(self) -> tuple[str, ...]:
        """All column names: the required ones, ``start, end`` if any row is a segment, then the label columns."""
        segments = SEGMENT_COLUMNS if any(row.start is not None for row in self._rows) else ()
        return REQUIRED_COLUMNS + segments + self._label_columns

    @property
    def ids(self) -> list[str]:
        return [row.id for row in self._rows]

    def split_rows(self, splits: Sequence[str] = SPLITS) -> dict[str, list[int]]:
        """Each split of ``splits`` -> the indices of its rows, in manifest order."""
        rows: dict[str, list[int]] = {split: [] for split in splits}
        for index, row in enumerate(self._rows):
            if row.split in rows:
                rows[row.split].append(index)
        return rows

    def digest(self) -> str:
        """SHA-256 of the rows' ids, absolute paths, durations, sample rates and audio files' size and ``mtime_ns``.

        What cached features and labels of the manifest depend on: an edited audio file
        changes the digest.

        Raises:
            FileNotFoundError: an audio file of the manifest does not exist.
        """
        digest = hashlib.sha256()
        for row in self._rows:
            path = os.path.abspath(row.path)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                raise FileNotFoundError(f"{path}: audio file of utterance {row.id!r} not found") from None
            record = [row.id, path, row.duration, row.sample_rate, stat.st_size, stat.st_mtime_ns]
            if row.start is not None:
                record += [row.start, row.end]
            digest.update(json.dumps(record).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def annotation_digest(self) -> str:
        """SHA-256 of the rows' ids, speakers, splits and label columns: what a probe's results
        depend on beyond the audio (:meth:`digest`), e.g. a new split or fold column."""
        digest = hashlib.sha256()
        for row in self._rows:
            record = [row.id, row.speaker, row.split, sorted(row.labels.items())]
            digest.update(json.dumps(record, default=str).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    @property
    def durations(self) -> np.ndarray:
        """``(utterances,)`` float64 durations in seconds."""
        return np.fromiter((row.duration for row in self._rows), dtype=np.float64, count=len(self._rows))

    def column(self, name: str) -> list[Any]:
        """Values of column ``name`` (required or label), one per row."""
        return [self._getter(name)(row) for row in self._rows]

    def counts(self, name: str) -> dict[Any, int]:
        """Number of rows per distinct value of column ``name``, sorted by value."""
        counter = Counter(self.column(name))
        return {value: counter[value] for value in sorted(counter, key=str)}

    def filter(self, **conditions: Any) -> Manifest:
        """Rows whose columns match every condition, e.g. ``filter(split="train")``.

        A condition's value is either one value (equality) or a list/tuple/set of allowed
        values, e.g. ``filter(split=("train", "valid"), gender="f")``.
        """
        tests = []
        for name, wanted in conditions.items():
            getter = self._getter(name)
            allowed = set(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else {wanted}
            tests.append((getter, allowed))
        return Manifest(row for row in self._rows if all(get(row) in allowed for get, allowed in tests))

    def select(self, indices: Sequence[int] | np.ndarray) -> Manifest:
        """Rows at ``indices`` ``(selected,)``, in that order."""
        return Manifest(self._rows[int(i)] for i in indices)

    def exclude_ids(self, ids: Collection[str]) -> Manifest:
        """Rows whose id is not in ``ids`` (e.g. the ids of files found bad)."""
        return Manifest(row for row in self._rows if row.id not in ids)

    def _getter(self, name: str) -> Callable[[Utterance], Any]:
        if name in REQUIRED_COLUMNS or name in SEGMENT_COLUMNS:
            return lambda row: getattr(row, name)
        if name in self._label_columns:
            return lambda row: row.labels[name]
        raise KeyError(f"unknown column {name!r} (expected one of: {', '.join(self.columns)})")

    def save(self, path: str | Path) -> None:
        """Write to ``path`` as CSV (``.csv``) or JSON Lines (``.jsonl``), atomically.

        Audio paths under the manifest's folder are written relative to it, others absolute.
        """
        path = Path(path)
        suffix = _check_suffix(path)
        base = Path(os.path.abspath(path.parent))
        records = []
        segments = "start" in self.columns
        for row in self._rows:
            audio = Path(os.path.abspath(row.path))
            stored = audio.relative_to(base).as_posix() if audio.is_relative_to(base) else str(audio)
            record: dict[str, Any] = {
                "id": row.id,
                "path": stored,
                "duration": row.duration,
                "sample_rate": row.sample_rate,
                "speaker": row.speaker,
                "split": row.split,
            }
            if segments:
                record.update(start=row.start, end=row.end)
            record.update(row.labels)
            records.append(record)
        text = io.StringIO(newline="")
        if suffix == ".csv":
            writer = csv.DictWriter(text, fieldnames=list(self.columns))
            writer.writeheader()
            for record in records:
                segment = {
                    name: "" if record[name] is None else repr(record[name])
                    for name in SEGMENT_COLUMNS
                    if segments
                }
                writer.writerow({**record, "duration": repr(record["duration"]), **segment})
        else:
            for record in records:
                text.write(json.dumps(record, ensure_ascii=False) + "\n")
        atomic_write_text(path, text.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest written by :meth:`save` (or by hand), validating every row.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ManifestError: wrong suffix, missing required column, or a value of the wrong
                type; the message names the file, line and column.
        """
        path = Path(path)
        suffix = _check_suffix(path)
        if not path.is_file():
            raise FileNotFoundError(f"manifest not found: {path}")
        base = Path(os.path.abspath(path.parent))
        records = _read_csv(path) if suffix == ".csv" else _read_jsonl(path)
        rows = []
        label_columns: list[str] | None = None
        seen: dict[str, int] = {}
        for line, record in records:
            row = _parse_record(record, path, line, base)
            if label_columns is None:
                label_columns = list(row.labels)
            elif set(row.labels) != set(label_columns):
                raise ManifestError(
                    f"{path}, line {line}: label columns {sorted(row.labels)} differ from the first "
                    f"row's {sorted(label_columns)}"
                )
            if row.id in seen:
                raise ManifestError(
                    f"{path}, line {line}, column 'id': duplicate id {row.id!r} (first on line {seen[row.id]})"
                )
            seen[row.id] = line
            rows.append(row)
        return cls(rows)


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(
            f"{path}: manifest must end in .csv or .jsonl, found {path.suffix or 'no suffix'!r}"
        )
    return suffix


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ManifestError(
                f"{path}, line 1: empty file, expected a header line with columns {REQUIRED_COLUMNS}"
            )
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise ManifestError(f"{path}, line 1: column {duplicated[0]!r} appears more than once")
        missing = [name for name in REQUIRED_COLUMNS if name not in header]
        if missing:
            raise ManifestError(
                f"{path}, line 1: missing required column {missing[0]!r} "
                f"(expected {', '.join(REQUIRED_COLUMNS)}; found {', '.join(header)})"
            )
        for values in reader:
            if not values:
                continue
            if len(values) != len(header):
                raise ManifestError(
                    f"{path}, line {reader.line_num}: expected {len(header)} fields, found {len(values)}"
                )
            yield reader.line_num, dict(zip(header, values, strict=True))


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}, line {line}: not valid JSON ({err.msg})") from err
            if not isinstance(record, dict):
                raise ManifestError(
                    f"{path}, line {line}: expected a JSON object, found {type(record).__name__}"
                )
            missing = [name for name in REQUIRED_COLUMNS if name not in record]
            if missing:
                raise ManifestError(f"{path}, line {line}: missing required column {missing[0]!r}")
            yield line, record


def _parse_record(record: dict[str, Any], path: Path, line: int, base: Path) -> Utterance:
    def fail(column: str, expected: str) -> ManifestError:
        return ManifestError(
            f"{path}, line {line}, column {column!r}: expected {expected}, found {record[column]!r}"
        )

    def text(column: str, allow_empty: bool) -> str:
        value = record[column]
        if not isinstance(value, str) or (not allow_empty and not value):
            raise fail(column, "a string" if allow_empty else "a non-empty string")
        return value

    duration = record["duration"]
    if isinstance(duration, str):
        try:
            duration = float(duration)
        except ValueError:
            raise fail("duration", "a number of seconds >= 0") from None
    if isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise fail("duration", "a number of seconds >= 0")
    if not (math.isfinite(duration) and duration >= 0):
        raise fail("duration", "a finite number of seconds >= 0")

    sample_rate = record["sample_rate"]
    if isinstance(sample_rate, str):
        try:
            sample_rate = int(sample_rate)
        except ValueError:
            raise fail("sample_rate", "a positive integer (Hz)") from None
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise fail("sample_rate", "a positive integer (Hz)")

    segment = {}
    for name in SEGMENT_COLUMNS:
        value = record.get(name)
        if value is None or value == "":
            segment[name] = None
            continue
        try:
            seconds = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds >= 0):
            raise fail(name, "a finite number of seconds >= 0 (or empty)")
        segment[name] = seconds
    if (segment["start"] is None) != (segment["end"] is None) or (
        segment["start"] is not None and segment["start"] >= segment["end"]
    ):
        raise fail("end", f"start < end, both set or both empty (start {record.get('start')!r})")

    labels = {}
    for name, value in record.items():
        if name in REQUIRED_COLUMNS or name in SEGMENT_COLUMNS:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise fail(name, "a string label")
        labels[name] = str(value)

    audio = Path(text("path", allow_empty=False))
    return Utterance(
        id=text("id", allow_empty=False),
        path=audio if audio.is_absolute() else base / audio,
        duration=float(duration),
        sample_rate=sample_rate,
        speaker=text("speaker", allow_empty=True),
        split=text("split", allow_empty=False),
        labels=labels,
        **segment,
    )
