"""Progress of long loops: a tqdm bar on a terminal, periodic log lines elsewhere.

Pretraining steps, feature extraction, head fits, unit fitting and labelling and the
studies report how far they are through one :class:`Progress`. On a terminal it draws a tqdm bar (nested bars
are cleared when done, the outermost stays). When the stream is not a terminal (a log
file, a batch job, CI), bars would write carriage returns into the log, so it writes a
line every :data:`LOG_INTERVAL_S` seconds instead, with done/total, rate and ETA::

    [12:03:41] features fbank / speaker_librispeech: 1200/5000 utterances (24%), 85.3 utterances/s, ETA 00:44

and a closing line with the elapsed time; work that finishes within the interval writes
nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TextIO, TypeVar

from tqdm.auto import tqdm

LOG_INTERVAL_S = 30.0

Item = TypeVar("Item")


class Progress:
    """How far a loop of ``total`` items is, shown on ``stream``.

    Args:
        total: items the work holds (``None``: unknown, no percentage or ETA).
        description: what is being done, e.g. ``"features fbank / speaker_librispeech"``.
        unit: the items' name, plural (``"utterances"``, ``"epochs"``).
        stream: where to write; ``sys.stderr`` by default (read when constructed).
        interval_s: seconds between log lines when ``stream`` is not a terminal
            (:data:`LOG_INTERVAL_S` by default, read when constructed).
        clock: seconds of a monotonic clock (tests pass a fake one).
        initial: items done before (a resumed run); the rate counts only the new ones.
    """

    def __init__(
        self,
        total: int | None,
        description: str,
        unit: str = "items",
        stream: TextIO | None = None,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        initial: int = 0,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"progress {description!r}: expected a total >= 0, found {total}")
        interval_s = LOG_INTERVAL_S if interval_s is None else interval_s
        if interval_s < 0:
            raise ValueError(f"progress {description!r}: expected interval_s >= 0, found {interval_s}")
        self.total = total
        self.description = description
        self.unit = unit
        self.done = self._initial = initial
        self._postfix: dict[str, str] = {}
        self._stream = stream if stream is not None else sys.stderr
        self._interval_s = interval_s
        self._clock = clock
        self._started = self._last_line = clock()
        self._lines = 0
        is_terminal = getattr(self._stream, "isatty", None)
        self._bar = (
            tqdm(
                total=total,
                initial=initial,
                desc=description,
                unit=f" {unit}",
                file=self._stream,
                dynamic_ncols=True,
                leave=None,
            )
            if is_terminal is not None and is_terminal()
            else None
        )

    def update(self, count: int = 1) -> None:
        """``count`` more items are done (``0``: nothing to show)."""
        if count == 0:
            return
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = self._clock()
        if now - self._last_line >= self._interval_s:
            self._write(self.line(now))
            self._last_line = now

    def set_postfix(self, values: Mapping[str, str]) -> None:
        """The latest values shown after the counts (e.g. ``{"loss": "1.23"}``), on the bar or the next line."""
        self._postfix = dict(values)
        if self._bar is not None:
            self._bar.set_postfix(self._postfix, refresh=False)

    def line(self, now: float, closing: bool = False) -> str:
        """The log line at clock time ``now``: done/total, percentage, rate, then the ETA (or, when
        ``closing``, the elapsed time) and the postfix values."""
        elapsed = now - self._started
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        text = f"{self.description}: {self.done}"
        if self.total is not None:
            text += f"/{self.total} {self.unit}"
            if self.total:
                text += f" ({100 * self.done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {rate:.3g} {self.unit}/s"
        if closing:
            text += f", done in {tqdm.format_interval(elapsed)}"
        elif self.total is not None and rate > 0:
            text += f", ETA {tqdm.format_interval(max(self.total - self.done, 0) / rate)}"
        return text + "".join(f", {key} {value}" for key, value in self._postfix.items())

    def close(self) -> None:
        """End the bar, or write the closing line if the work outlasted one interval."""
        if self._bar is not None:
            self._bar.close()
            return
        now = self._clock()
        if self._lines or now - self._started >= self._interval_s:
            self._write(self.line(now, closing=True))

    def _write(self, text: str) -> None:
        self._stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self._stream.flush()
        self._lines += 1

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def track(
    items: Iterable[Item], description: str, total: int | None = None, unit: str = "items", **options: object
) -> Iterator[Item]:
    """``items``, one by one, counted by a :class:`Progress` (``total`` defaults to ``len(items)``
    where it has one; ``options`` go to :class:`Progress`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(total, description, unit, **options) as progress:
        for item in items:
            yield item
            progress.update()


__all__ = ["LOG_INTERVAL_S", "Progress", "track"]
