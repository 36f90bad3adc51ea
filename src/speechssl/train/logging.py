"""Training metrics: JSON lines, TensorBoard scalars and progress (:class:`speechssl.progress.Progress`).

Each logged update becomes one JSON object on its own line of ``run_dir/metrics.jsonl``
(step, epoch, lr, loss, the method's metrics, throughput, elapsed time) and the same
numbers become TensorBoard scalars under ``run_dir/tensorboard``. Only the main process
of a distributed run logs; the others hold a disabled logger.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from speechssl.progress import Progress
from speechssl.storage import atomic_write_text

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Writes ``metrics.jsonl`` and TensorBoard scalars, and shows the steps' progress (a bar on a
    terminal, log lines with rate, ETA and the last loss elsewhere).

    Args:
        run_dir: run directory; files go in it.
        enabled: ``False`` on non-main processes: nothing is written or drawn.
        total_steps: the steps of the whole run (the progress total).
        initial_step: where the progress starts (the resumed step).
    """

    def __init__(
        self, run_dir: str | Path, enabled: bool = True, total_steps: int = 0, initial_step: int = 0
    ) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled
        self._writer: SummaryWriter | None = None
        self._progress: Progress | None = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(log_dir=str(self.path.parent / "tensorboard"))
            self._progress = Progress(total_steps, "pretraining", "steps", initial=initial_step)

    def drop_after(self, step: int) -> None:
        """Remove records of steps after ``step`` (written before a crash, redone after resuming)."""
        if not (self.enabled and self.path.is_file()):
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if line and json.loads(line)["step"] <= step]
        atomic_write_text(self.path, "".join(f"{line}\n" for line in kept))

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more updates in the progress."""
        if self._progress is not None:
            self._progress.update(steps)

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (must hold an int ``step``) as one JSON line and as TensorBoard scalars."""
        if not self.enabled:
            return
        step = int(record["step"])
        with self.path.open("a") as f:
            f.write(json.dumps(_json_safe(record)) + "\n")
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()
        postfix = {"loss": f"{record['loss']:.4g}"} if "loss" in record else {}
        if "audio_seconds_per_second" in record:
            postfix["audio-s/s"] = f"{record['audio_seconds_per_second']:.1f}"
        self._progress.set_postfix(postfix)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.close()
        if self._writer is not None:
            self._writer.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every record of ``run_dir/metrics.jsonl``, in order."""
    path = Path(run_dir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _json_safe(record: Mapping[str, Any]) -> dict[str, Any]:
    """Non-finite floats become strings (``"nan"``) so every line is strict JSON."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
