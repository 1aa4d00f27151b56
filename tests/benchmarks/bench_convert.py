"""Benchmark: convert a 661-frame single-slice dynamic series plus 6 flip-angle images.

Target (issue): under 20 s. Builds the DICOM with pydicom (128 × 128 matrix, files
with random names in shuffled sub-folders, timing only in AcquisitionTime), then times
``convert_dicom_study`` end to end (discovery, classification, pixels, NIfTI + JSON
writing, provenance) and prints the figures.

Run: ``python tests/benchmarks/bench_convert.py``
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dicom_factory import phantom, write_series  # noqa: E402

from bidsapp.conversion import convert_dicom_study  # noqa: E402

N_FRAMES, MATRIX, ANGLES, TARGET_S = 661, (128, 128, 1), (2.0, 4.0, 6.0, 9.0, 12.0, 15.0), 20.0


def build(folder):
    affine = np.diag([-1.5, 1.5, 5.0, 1.0])
    dyn = phantom(MATRIX + (N_FRAMES,), 1)
    write_series(
        folder,
        dyn,
        affine,
        vendor="acqtime",
        series_number=7,
        description="dyn",
        times=np.arange(N_FRAMES) * 1.5,
        start=86400.0 - 300.0,
    )
    for i, angle in enumerate(ANGLES):
        write_series(
            folder,
            phantom(MATRIX, 10 + i),
            affine,
            vendor="acqtime",
            series_number=20 + i,
            description=f"vfa_fa{angle:g}",
            flip=angle,
            start=80000.0 + 30 * i,
        )


def main():
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        dicom, bids = Path(tmp) / "dicom", Path(tmp) / "bids"
        t0 = time.perf_counter()
        build(dicom)
        t1 = time.perf_counter()
        result = convert_dicom_study(dicom, bids, "bench")
        t2 = time.perf_counter()
        again = convert_dicom_study(dicom, bids, "bench")
        t3 = time.perf_counter()
        if not (result.ok and again.ok):
            print("conversion failed:", result.errors + again.errors)
            return 1
        n_files = result.plan.n_files
        print(
            f"DICOM files: {n_files} ({N_FRAMES} dynamic frames {MATRIX[0]}x{MATRIX[1]} + {len(ANGLES)} flip "
            f"angles); built in {t1 - t0:.1f} s"
        )
        print(
            f"convert (first run): {t2 - t1:.2f} s   target < {TARGET_S:.0f} s   "
            f"{'PASS' if t2 - t1 < TARGET_S else 'FAIL'}"
        )
        print(f"convert (re-run, all files unchanged): {t3 - t2:.2f} s")
    return 0 if t2 - t1 < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
