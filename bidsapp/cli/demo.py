"""``dcequant-demo OUT``: the whole product on a small simulated study, in one command.

1. simulate a DICOM study (``dcequant-simulate``: 2 subjects, 1 session, 64×64×6 voxels
   of 3.4×3.4×5 mm — fine enough that the arteries hold pure arterial voxels, so the AIF is
   detected in the image — with the truth in ``OUT/bids/derivatives/truth``);
2. convert it to BIDS (``dcequant-convert``, one call per subject);
3. run ``dcequant OUT/bids OUT/derivatives/dcequant participant`` (validated input);
4. run the group level with the simulator's tissue segmentation as ROIs;
5. print where the reports and the group table are.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ..bids_raw import subject_dir

#: voxels of the demo study; at this resolution both demo subjects get an image-derived AIF
DEFAULT_MATRIX = (64, 64, 6)
#: in-plane field of view (mm) and slice thickness (mm) of the demo study
FOV, SLICE = 220.0, 5.0


def demo_grid(matrix=DEFAULT_MATRIX):
    """Return the simulated grid of the demo for ``matrix`` voxels."""
    from ..simulate import Grid

    return Grid(matrix=tuple(matrix), voxel_size=(FOV / matrix[0], FOV / matrix[1], SLICE))


def build_parser():
    """Return the argument parser of ``dcequant-demo``."""
    parser = argparse.ArgumentParser(
        prog="dcequant-demo",
        description="Simulate a small DICOM study, convert it, run dcequant "
        "(participant and group) and print where the reports are.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="empty or new folder for the demo")
    parser.add_argument("--subjects", type=int, default=2, help="number of simulated subjects")
    parser.add_argument("--sessions", type=int, default=1, help="sessions per subject")
    parser.add_argument(
        "--matrix",
        type=int,
        nargs=3,
        default=DEFAULT_MATRIX,
        metavar=("NX", "NY", "NZ"),
        help="voxels of the simulated grid",
    )
    parser.add_argument("--nprocs", type=int, default=min(2, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dcequant-demo``; returns the exit code."""
    from ..conversion.cli import main as convert_main
    from ..simulate import simulate_study
    from .run import main as dcequant_main

    args = build_parser().parse_args(argv)
    bids_dir = args.out / "bids"
    out_dir = args.out / "derivatives" / "dcequant"
    grid = demo_grid(args.matrix)
    print(f"[1/4] simulating {args.subjects} subject(s) x {args.sessions} session(s) as DICOM in {bids_dir}")
    try:
        summary = simulate_study(
            bids_dir,
            n_subjects=args.subjects,
            n_sessions=args.sessions,
            fmt="dicom",
            grid=grid,
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"dcequant-demo: error: {exc}", file=sys.stderr)
        return 1
    print("[2/4] converting DICOM to BIDS with dcequant-convert")
    for item in summary.sessions:
        subject, session = item["subject"], item["session"]
        dicom = subject_dir(bids_dir / "sourcedata" / "dicom", subject, session)
        argv_convert = [str(dicom), str(bids_dir), "--participant-label", subject]
        if session:
            argv_convert += ["--session-label", session]
        code = convert_main(argv_convert)
        if code != 0:
            print(f"dcequant-demo: error: conversion of {dicom} failed (exit code {code})", file=sys.stderr)
            return code
    work_dir = args.out / "work"
    print(f"[3/4] dcequant {bids_dir} {out_dir} participant")
    code = dcequant_main(
        [
            str(bids_dir),
            str(out_dir),
            "participant",
            "-w",
            str(work_dir),
            "--nprocs",
            str(args.nprocs),
            "--random-seed",
            str(args.seed),
        ]
    )
    if code != 0:
        return code
    print(f"[4/4] dcequant {bids_dir} {out_dir} group")
    code = dcequant_main(
        [str(bids_dir), str(out_dir), "group", "--roi", str(bids_dir / "derivatives" / "truth")]
    )
    if code != 0:
        return code
    print("\nDemo finished. Open the reports:")
    for report in sorted(out_dir.glob("sub-*.html")):
        print(f"  {report.resolve()}")
    print(f"Group report: {(out_dir / 'group_report.html').resolve()}")
    print(f"Group ROI table: {(out_dir / 'group_desc-roistats_stats.tsv').resolve()}")
    print(f"Methods: {(out_dir / 'logs' / 'CITATION.md').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
