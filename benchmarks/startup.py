"""Start-up of the light ``speechssl`` commands, beside the cost of importing torch alone.

Each command runs in a fresh interpreter (as a user's shell runs it), interleaved with the
others round after round, and the table shows the median wall time with min–max and the
peak resident memory. ``import torch`` is the reference: the commands should cost a small
fraction of it, since they never import it.

    python benchmarks/startup.py [--rounds 7] [--fsdd ../shared/data/fsdd/recordings]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"

# runs a command in this interpreter and prints its peak RSS (KiB) on the last line
RUNNER = """
import resource, sys
argv = sys.argv[1:]
if argv[0] == "import-torch":
    import torch  # noqa: F401
else:
    from speechssl.cli import main
    try:
        main(argv)
    except SystemExit:
        pass
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def run_once(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of ``argv`` in a fresh interpreter."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", RUNNER, *argv], capture_output=True, text=True, check=True)
    return time.perf_counter() - start, int(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--fsdd", default=str(FSDD), help="FSDD recordings folder for `data manifest`")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    with tempfile.TemporaryDirectory() as scratch:
        commands = {
            "speechssl --help": ["--help"],
            "speechssl data list": ["data", "list"],
            "import torch (reference)": ["import-torch"],
        }
        if Path(args.fsdd).is_dir():
            commands["speechssl data manifest FSDD"] = [
                "data", "manifest", args.fsdd, "-o", str(Path(scratch) / "fsdd.csv"),
            ]  # fmt: skip
        else:
            print(f"(no FSDD at {args.fsdd}: `data manifest` row skipped)")
        times: dict[str, list[float]] = {name: [] for name in commands}
        memory: dict[str, list[int]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                seconds, rss = run_once(argv)
                times[name].append(seconds)
                memory[name].append(rss)

    print(f"\n{args.rounds} rounds, interleaved; Python {sys.version.split()[0]}\n")
    print("| command | wall s, median (min–max) | peak RSS MiB |")
    print("|---|---|---|")
    for name in commands:
        t = times[name]
        print(
            f"| {name} | {statistics.median(t):.3f} ({min(t):.3f}–{max(t):.3f}) "
            f"| {statistics.median(memory[name]) / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
