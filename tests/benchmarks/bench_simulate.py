"""Benchmark: simulate a 2-subject × 2-session study in both formats.

Target (issue): matrix 64×64×8, 40 frames, BIDS + DICOM (+ truth) in under 30 s on 2 CPU cores. Prints the
wall time of each of 3 runs and the best. Run: ``python tests/benchmarks/bench_simulate.py``.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

from bidsapp.simulate import Grid, Protocol, simulate_study  # noqa: E402

TARGET_S = 30.0


def one_run():
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        simulate_study(
            Path(tmp) / "study",
            n_subjects=2,
            n_sessions=2,
            fmt="both",
            seed=0,
            protocol=Protocol(n_frames=40),
            grid=Grid(matrix=(64, 64, 8)),
        )
        seconds = time.perf_counter() - start
        files = sum(1 for _ in (Path(tmp) / "study").rglob("*") if _.is_file())
    return seconds, files


def main():
    print(f"2 subjects x 2 sessions, 64x64x8, 40 frames, BIDS + DICOM; {os.cpu_count()} CPU(s) visible")
    times = []
    for run in range(3):
        seconds, files = one_run()
        times.append(seconds)
        print(f"run {run + 1}: {seconds:.2f} s ({files} files)")
    best = min(times)
    print(f"best: {best:.2f} s (target < {TARGET_S:.0f} s): {'PASS' if best < TARGET_S else 'FAIL'}")
    return 0 if best < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
