"""``dcequant-simulate``: write a simulated DCE-MRI study with known truth.

Examples::

    dcequant-simulate /tmp/study --subjects 2 --sessions 2 --format both
    dcequant-simulate /tmp/dicom --format dicom --vendor philips --vfa-separate-study
    dcequant-simulate /tmp/cohort --subjects 20 --effect-size 1.5 --snr 20 --matrix 96,96,12
"""

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from .bids_writer import TIMING_FIELDS
from .dicom_vendors import VENDORS
from .geometry import Grid
from .protocol import Protocol
from .study import FORMATS, simulate_study


def _floats(text, n=None, name="value"):
    try:
        values = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} {text!r} must be comma-separated numbers") from None
    if n is not None and len(values) != n:
        raise argparse.ArgumentTypeError(f"{name} {text!r} needs {n} numbers")
    return values


def _matrix(text):
    values = _floats(text, 3, "matrix")
    if any(v != int(v) or v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"matrix {text!r} must be three positive integers, e.g. 64,64,8")
    return tuple(int(v) for v in values)


def build_parser():
    """Return the argument parser of ``dcequant-simulate``."""
    p = argparse.ArgumentParser(
        prog="dcequant-simulate",
        description="Simulate a DCE-MRI study (BIDS and/or DICOM) with ground truth.",
    )
    p.add_argument("out", help="output folder (must be empty unless --overwrite)")
    p.add_argument("--subjects", type=int, default=2, help="number of subjects (default 2)")
    p.add_argument("--sessions", type=int, default=1, help="sessions per subject, test-retest (default 1)")
    p.add_argument("--format", choices=FORMATS, default="bids", help="raw output format (default bids)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--vendor", choices=VENDORS, default="siemens", help="DICOM conventions (default siemens)")
    p.add_argument(
        "--vfa-separate-study", action="store_true", help="DICOM: VFA series in their own StudyInstanceUID"
    )
    p.add_argument("--matrix", type=_matrix, default=(64, 64, 8), help="nx,ny,nz (default 64,64,8)")
    p.add_argument(
        "--voxel-size",
        type=lambda t: _floats(t, 3, "voxel size"),
        default=(3.4375, 3.4375, 5.0),
        help="mm (default 3.4375,3.4375,5)",
    )
    p.add_argument(
        "--vfa-matrix",
        type=_matrix,
        default=None,
        help="nx,ny,nz of the VFA grid (default: the DCE grid; --format bids)",
    )
    p.add_argument(
        "--vfa-voxel-size",
        type=lambda t: _floats(t, 3, "voxel size"),
        default=None,
        help="VFA voxel size in mm (with --vfa-matrix)",
    )
    p.add_argument(
        "--snr", type=float, default=30.0, help="mean baseline brain signal / noise SD (default 30)"
    )
    p.add_argument(
        "--timing-field",
        choices=TIMING_FIELDS,
        default="VolumeTiming",
        help="BIDS form of the DCE frame timing: VolumeTiming or RepetitionTime (default VolumeTiming)",
    )
    p.add_argument("--frames", type=int, default=40, help="DCE frames (default 40)")
    p.add_argument("--temporal-resolution", type=float, default=5.0, help="s per frame (default 5)")
    p.add_argument("--baseline-frames", type=int, default=5, help="pre-contrast frames (default 5)")
    p.add_argument(
        "--bolus-arrival",
        type=float,
        default=None,
        help="mean bolus arrival in s (default: half a frame before the first post-baseline frame)",
    )
    p.add_argument(
        "--flip-angles",
        type=lambda t: _floats(t, None, "flip angles"),
        default=(2.0, 5.0, 10.0, 15.0),
        help="VFA angles, degrees (default 2,5,10,15)",
    )
    p.add_argument("--vfa-tr", type=float, default=0.005, help="VFA TR in s (default 0.005)")
    p.add_argument("--dce-flip-angle", type=float, default=15.0, help="DCE flip angle, degrees (default 15)")
    p.add_argument("--dce-tr", type=float, default=0.005, help="DCE TR in s (default 0.005)")
    p.add_argument("--te", type=float, default=0.0015, help="echo time in s (default 0.0015)")
    p.add_argument("--field-strength", type=float, default=3.0, help="B0 in T, 1.5-3 (default 3)")
    p.add_argument("--agent", default="gadobutrol", help="contrast agent (default gadobutrol)")
    p.add_argument("--dose", type=float, default=0.1, help="dose in mmol/kg (default 0.1)")
    p.add_argument("--aif", default="parker", help="population AIF (default parker)")
    p.add_argument(
        "--b1",
        type=float,
        default=0.0,
        help="B1 inhomogeneity, max relative deviation (default 0 = none; >0 writes a TB1map)",
    )
    p.add_argument("--motion", type=float, default=0.0, help="max rigid motion in mm/degrees (default 0)")
    p.add_argument(
        "--effect-size",
        type=float,
        default=1.0,
        help="group effect on tumour-rim log Ktrans/vp, Cohen's d (default 1)",
    )
    p.add_argument("--no-lesion", action="store_true", help="omit the non-enhancing lesion")
    p.add_argument(
        "--dose-pairs", action="store_true", help="also write pre/low-dose/standard-dose T1w volumes"
    )
    p.add_argument(
        "--low-dose",
        type=float,
        default=0.25,
        help="low dose as a fraction of the standard dose (default 0.25)",
    )
    p.add_argument("--overwrite", action="store_true", help="allow a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        protocol = Protocol(
            field_strength=args.field_strength,
            agent=args.agent,
            dose=args.dose,
            aif=args.aif,
            vfa_flip_angles=args.flip_angles,
            vfa_tr=args.vfa_tr,
            echo_time=args.te,
            dce_flip_angle=args.dce_flip_angle,
            dce_tr=args.dce_tr,
            n_frames=args.frames,
            temporal_resolution=args.temporal_resolution,
            baseline_frames=args.baseline_frames,
            bolus_arrival=args.bolus_arrival,
            snr=args.snr,
            b1_amplitude=args.b1,
            motion=args.motion,
        )
        grid = Grid(matrix=args.matrix, voxel_size=args.voxel_size)
        vfa_grid = None
        if args.vfa_matrix or args.vfa_voxel_size:
            vfa_grid = Grid(
                matrix=args.vfa_matrix or args.matrix, voxel_size=args.vfa_voxel_size or args.voxel_size
            )
        simulate_study(
            args.out,
            n_subjects=args.subjects,
            n_sessions=args.sessions,
            fmt=args.format,
            seed=args.seed,
            protocol=protocol,
            grid=grid,
            vendor=args.vendor,
            effect_size=args.effect_size,
            lesion=not args.no_lesion,
            dose_pairs=args.dose_pairs,
            low_dose_fraction=args.low_dose,
            vfa_separate_study=args.vfa_separate_study,
            overwrite=args.overwrite,
            timing_field=args.timing_field,
            vfa_grid=vfa_grid,
            progress=None if args.quiet else (lambda line: print(line, flush=True)),
        )
    except ValueError as err:
        print(f"dcequant-simulate: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
