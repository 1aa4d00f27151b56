"""Wall time of ``dcequant group`` on 50 subjects' synthetic derivatives.

Target (issue #15): the group level on 50 subjects completes in under 60 s on 2 CPU cores.

    python tests/benchmarks/bench_group.py [--subjects 50] [--sessions 2] [--matrix 64 64 8]

Writes synthetic derivatives with ``tests/group_data.py`` (per session: the 17 float maps of a default
participant run (VFA T1/M0/residual, extended Tofts and Patlak parameters with standard errors and R²) plus a
network Ktrans, a 4-D concentration series and a mask; a 3-label dseg with dseg.tsv in a separate ROI folder;
two sites), then runs the whole group level (ROI table, ICC across sessions, AUROC, paired DeLong, site
effects, per-site tables, report) and prints the figures.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--matrix", type=int, nargs=3, default=(64, 64, 8))
    args = parser.parse_args()

    from group_data import FULL_MAPS, write_derivatives

    from bidsapp.cli.run import main as dcequant

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        write_derivatives(
            tmp,
            n_subjects=args.subjects,
            n_sessions=args.sessions,
            shape=tuple(args.matrix),
            sites=["A", "B", "C"],
            maps=FULL_MAPS,
        )
        written = time.perf_counter() - started
        (tmp / "g.json").write_text(
            json.dumps(
                {
                    "label": {"column": "grade", "positive": "high"},
                    "compare": [["cnn_Ktrans", "extendedtofts_Ktrans"]],
                    "by_site": True,
                }
            )
        )
        started, cpu = time.perf_counter(), time.process_time()
        code = dcequant(
            [
                str(tmp / "bids"),
                str(tmp / "out"),
                "group",
                "--roi",
                str(tmp / "rois"),
                "--group-config",
                str(tmp / "g.json"),
            ]
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        rows = sum(1 for _ in (tmp / "out" / "group_desc-roistats_stats.tsv").open()) - 1
    print(
        f"synthetic derivatives: {args.subjects} subjects x {args.sessions} sessions, matrix "
        f"{tuple(args.matrix)}, {len(FULL_MAPS)} maps, written in {written:.1f} s"
    )
    print(
        f"group level: exit {code}, {seconds:.1f} s wall, {cpu:.1f} s CPU ({rows} ROI rows); target < 60 s "
        "on 2 cores"
    )


if __name__ == "__main__":
    main()
