"""Progress: a tqdm bar on a terminal, log lines with done/total, rate and ETA elsewhere."""

from __future__ import annotations

import io
import re

import pytest

from speechssl.progress import Progress, track


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_stream_gets_lines_with_done_total_rate_and_eta() -> None:
    stream, clock = io.StringIO(), FakeClock()
    with Progress(
        100, "features fbank / toy", "utterances", stream=stream, interval_s=30.0, clock=clock
    ) as progress:
        clock.now = 10.0
        progress.update(20)  # within the interval: no line
        clock.now = 40.0
        progress.update(20)  # 40 done in 40 s: 1 utterance/s, 60 left
        clock.now = 50.0
        progress.update(10)  # 10 s after the last line: none
        clock.now = 100.0
        progress.update(50)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"\[\d\d:\d\d:\d\d\] features fbank / toy: 40/100 utterances \(40%\), 1 utterances/s, ETA 01:00",
        lines[0],
    )
    assert lines[1].endswith("100/100 utterances (100%), 1 utterances/s, ETA 00:00")
    assert lines[2].endswith("100/100 utterances (100%), 1 utterances/s, done in 01:40")
    assert "\r" not in stream.getvalue()


def test_short_work_on_a_log_stream_writes_nothing() -> None:
    stream, clock = io.StringIO(), FakeClock()
    for _ in track(range(5), "head fit", unit="epochs", stream=stream, clock=clock):
        clock.now += 1.0
    assert stream.getvalue() == ""


def test_unknown_total_has_no_eta() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(None, "units label", "utterances", stream=stream, interval_s=0.0, clock=clock)
    clock.now = 2.0
    progress.update(4)
    assert stream.getvalue().rstrip().endswith("units label: 4 utterances, 2 utterances/s")


def test_a_terminal_gets_a_bar() -> None:
    stream = Terminal()
    assert list(track(range(3), "seeds", unit="seeds", stream=stream)) == [0, 1, 2]
    output = stream.getvalue()
    assert "\r" in output and "seeds: 100%" in output and "3/3" in output
    assert not re.search(r"^\[\d\d:\d\d:\d\d\]", output, re.MULTILINE)  # no log lines


def test_bad_totals_are_refused() -> None:
    with pytest.raises(ValueError, match="progress 'x': expected a total >= 0, found -1"):
        Progress(-1, "x", stream=io.StringIO())


def test_a_resumed_loop_counts_its_rate_from_the_new_items_and_shows_the_postfix() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(
        1000, "pretraining", "steps", stream=stream, interval_s=10.0, clock=clock, initial=600
    )
    progress.set_postfix({"loss": "2.31"})
    clock.now = 20.0
    progress.update(100)  # 100 new steps in 20 s: 5 steps/s, 300 left -> 60 s
    progress.close()
    first, last = stream.getvalue().splitlines()
    assert first.endswith("pretraining: 700/1000 steps (70%), 5 steps/s, ETA 01:00, loss 2.31")
    assert last.endswith("pretraining: 700/1000 steps (70%), 5 steps/s, done in 00:20, loss 2.31")


def test_the_pretraining_logger_reports_steps_with_the_loss(tmp_path, monkeypatch, capsys) -> None:
    from speechssl.train.logging import MetricsLogger

    monkeypatch.setattr("speechssl.progress.LOG_INTERVAL_S", 0.0)
    with MetricsLogger(tmp_path, total_steps=4, initial_step=2) as logger:
        logger.log({"step": 3, "loss": 1.5})
        logger.advance()
    err = capsys.readouterr().err
    assert "pretraining: 3/4 steps (75%)" in err and "loss 1.5" in err
