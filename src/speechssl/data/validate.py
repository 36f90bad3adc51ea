"""Sanity report on a manifest: counts, durations, label sets, sample rates, bad files, rows whose
stated duration is not their file's, and the label values of ``valid``/``test`` that ``train`` lacks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from speechssl.data.audio import BadFileSummary
from speechssl.data.dataset import header_durations, scan_bad_files
from speechssl.data.manifest import Manifest, Utterance

DURATION_TOLERANCE = 0.1
"""Seconds a manifest's stated duration may differ from its file's header before it is reported."""


@dataclass(frozen=True)
class DurationMismatch:
    """A manifest row whose ``duration`` is not its file's (crops past the end fail, batches misjudge).

    Attributes:
        id: the utterance id.
        path: the audio file.
        stated: the manifest's duration, seconds.
        found: the file header's duration, seconds.
    """

    id: str
    path: str
    stated: float
    found: float


@dataclass
class ValidationReport:
    """What :func:`validate_manifest` found.

    Attributes:
        num_utterances: rows in the manifest.
        split_counts: rows per split.
        num_speakers: distinct speakers.
        speakers_per_split: distinct speakers per split.
        total_seconds, min_seconds, mean_seconds, max_seconds: durations (0 when empty).
        label_counts: per label column, rows per value.
        sample_rates: rows per file sample rate (Hz).
        bad_files: files left out of the manifest while it was built (bad header), then
            the manifest's files that failed to decode (or whose header failed with
            ``decode=False``).
        decoded: whether every file was decoded.
        unseen_labels: per label column, per split (``valid``, ``test``), the values absent from
            ``train``: classes no head trained on ``train`` can predict (columns of free text,
            most of whose values are distinct, are left out).
        duration_mismatches: rows whose stated duration differs from their file's header by
            more than the tolerance (``DURATION_TOLERANCE`` seconds by default).
    """

    num_utterances: int
    split_counts: dict[str, int]
    num_speakers: int
    speakers_per_split: dict[str, int]
    total_seconds: float
    min_seconds: float
    mean_seconds: float
    max_seconds: float
    label_counts: dict[str, dict[str, int]]
    sample_rates: dict[int, int]
    bad_files: BadFileSummary = field(default_factory=BadFileSummary)
    decoded: bool = True
    unseen_labels: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    duration_mismatches: list[DurationMismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file is bad and every stated duration is its file's."""
        return not self.bad_files and not self.duration_mismatches

    def format(self, max_values: int = 12) -> str:
        """Human-readable report.

        Label columns with many values show the ``max_values`` most frequent, long values cut short.
        """
        lines = [
            f"utterances: {self.num_utterances}",
            "splits: " + ", ".join(f"{name}={count}" for name, count in self.split_counts.items()),
            f"speakers: {self.num_speakers} ("
            + ", ".join(f"{name}={count}" for name, count in self.speakers_per_split.items())
            + ")",
            f"duration: total {self.total_seconds / 3600:.2f} h, min {self.min_seconds:.2f} s, "
            f"mean {self.mean_seconds:.2f} s, max {self.max_seconds:.2f} s",
            "sample rates: " + ", ".join(f"{rate} Hz ({count})" for rate, count in self.sample_rates.items()),
        ]
        for column, counts in self.label_counts.items():
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            shown = ", ".join(f"{_shorten(value)!r}: {count}" for value, count in ranked[:max_values])
            more = f", ... ({len(counts) - max_values} more)" if len(counts) > max_values else ""
            lines.append(f"label {column}: {len(counts)} values: {shown}{more}")
        for column, splits in self.unseen_labels.items():
            for split, values in splits.items():
                shown = ", ".join(repr(_shorten(value)) for value in values[:max_values])
                more = f", ... ({len(values) - max_values} more)" if len(values) > max_values else ""
                lines.append(
                    f"warning: label {column}: {len(values)} value(s) in {split} but not in train: {shown}{more}"
                )
        if self.duration_mismatches:
            lines.append(
                f"{len(self.duration_mismatches)} row(s) whose duration is not their file's (stated -> header):"
            )
            lines += [
                f"  {m.id}: {m.path}: {m.stated:.3f} s -> {m.found:.3f} s"
                for m in self.duration_mismatches[:20]
            ]
            if len(self.duration_mismatches) > 20:
                lines.append(f"  ... and {len(self.duration_mismatches) - 20} more")
        checked = "decoded" if self.decoded else "headers checked"
        lines.append(f"files {checked}: {self.bad_files.format() if self.bad_files else 'all good'}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-able form (sample-rate keys as strings)."""
        return {
            "num_utterances": self.num_utterances,
            "split_counts": dict(self.split_counts),
            "num_speakers": self.num_speakers,
            "speakers_per_split": dict(self.speakers_per_split),
            "total_seconds": self.total_seconds,
            "min_seconds": self.min_seconds,
            "mean_seconds": self.mean_seconds,
            "max_seconds": self.max_seconds,
            "label_counts": {column: dict(counts) for column, counts in self.label_counts.items()},
            "sample_rates": {str(rate): count for rate, count in self.sample_rates.items()},
            "bad_files": self.bad_files.to_dict(),
            "decoded": self.decoded,
            "unseen_labels": {column: dict(splits) for column, splits in self.unseen_labels.items()},
            "duration_mismatches": [asdict(m) for m in self.duration_mismatches],
        }


def _shorten(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def unseen_labels(manifest: Manifest) -> dict[str, dict[str, list[str]]]:
    """Per label column, the values of ``valid`` and of ``test`` rows that no ``train`` row has.

    Columns with more distinct values than half their rows (transcripts, ids) are not classes
    and are skipped; so is a manifest without ``train`` rows.
    """
    train = manifest.filter(split="train")
    if not len(train):
        return {}
    unseen: dict[str, dict[str, list[str]]] = {}
    for column in manifest.label_columns:
        if len(manifest.counts(column)) > len(manifest) / 2:
            continue
        known = set(train.column(column))
        for split in ("valid", "test"):
            values = sorted(set(manifest.filter(split=split).column(column)) - known)
            if values:
                unseen.setdefault(column, {})[split] = values
    return unseen


def held_seconds(row: Utterance, file_seconds: float) -> float:
    """The seconds of ``row`` that its file holds (``file_seconds`` long): the whole file, or the
    part of the row's ``[start, end)`` segment inside it; a row whose stated duration is not this
    is stale (``DURATION_TOLERANCE``)."""
    if row.start is None or row.end is None:
        return file_seconds
    return max(0.0, min(row.end, file_seconds) - row.start)


def validate_manifest(
    manifest: Manifest,
    decode: bool = True,
    workers: int = 2,
    bad_files: BadFileSummary | None = None,
    duration_tolerance: float = DURATION_TOLERANCE,
) -> ValidationReport:
    """Count, summarise and check every file of ``manifest``.

    Args:
        manifest: the utterances.
        decode: decode every file with :func:`~speechssl.data.audio.load_audio` (at its own
            rate); ``False`` reads headers only.
        workers: threads checking files.
        bad_files: files already left out of ``manifest`` while it was built (the summary
            filled by ``load_corpus(..., bad_files=...)``); they head the report's bad files,
            so the report is not ``ok`` when any is listed. Not modified.
        duration_tolerance: seconds a row's stated duration may differ from its file header's
            before the row is reported (and the report is not ``ok``).
    """
    found = BadFileSummary(list(bad_files) if bad_files is not None else [])
    found.extend(scan_bad_files(manifest, workers=workers, decode=decode))
    headers, _ = header_durations(manifest, workers=workers)
    mismatches = [
        DurationMismatch(row.id, str(row.path), row.duration, held_seconds(row, float(actual)))
        for row, actual in zip(manifest, headers.tolist(), strict=True)
        if not math.isnan(actual)
        and abs(row.duration - held_seconds(row, actual)) > duration_tolerance  # NaN: bad file
    ]
    durations = manifest.durations
    splits = manifest.counts("split")
    return ValidationReport(
        num_utterances=len(manifest),
        split_counts=splits,
        num_speakers=len(manifest.counts("speaker")),
        speakers_per_split={name: len(manifest.filter(split=name).counts("speaker")) for name in splits},
        total_seconds=float(durations.sum()),
        min_seconds=float(durations.min()) if len(durations) else 0.0,
        mean_seconds=float(durations.mean()) if len(durations) else 0.0,
        max_seconds=float(durations.max()) if len(durations) else 0.0,
        label_counts={column: manifest.counts(column) for column in manifest.label_columns},
        sample_rates=manifest.counts("sample_rate"),
        bad_files=found,
        decoded=decode,
        unseen_labels=unseen_labels(manifest),
        duration_mismatches=mismatches,
    )
