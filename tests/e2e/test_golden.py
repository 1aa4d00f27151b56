"""A run of the demo-sized study gives the stored derivatives, sidecars and reports, voxel for
voxel (the reference and its regeneration: ``tests/golden.py``, ``tests/data/golden/``).

Integer and boolean maps, NIfTI headers, the report text and every non-numeric value must
be identical. Floating-point values (map voxels, JSON numbers, TSV cells) must agree to a
relative 1e-4 (absolute 1e-12 near zero): the last bits of a float32 map move with the order
of floating-point reductions (thread count, CPU, blocking of a sum), and ill-conditioned
standard errors amplify that to ~1e-5; neither is a change of result, and any change of
method moves them by far more.
"""

import math

import numpy as np
import pytest
from golden import CASES, read_reference, run_case, snapshot

pytestmark = pytest.mark.slow

RTOL, ATOL = 1e-4, 1e-12


def _close(a, b):
    """Return whether two parsed JSON values or TSV cells agree (floats within RTOL/ATOL)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str):
        try:
            return a == b or _close(float(a), float(b))
        except ValueError:
            return False
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL)
    return a == b


@pytest.mark.parametrize("case", CASES)
def test_outputs_equal_the_golden_reference(case, tmp_path):
    files, arrays = snapshot(run_case(case, tmp_path), tmp_path)
    ref_files, ref_arrays = read_reference(case)
    assert sorted(files) == sorted(ref_files), "the set of output files changed"
    for rel, ref in ref_files.items():
        if rel in ref_arrays:  # NIfTI: header bytes, then the data voxel for voxel (NaN where NaN)
            np.testing.assert_array_equal(arrays[rel + "::header"], ref_arrays[rel + "::header"], err_msg=rel)
            assert arrays[rel].dtype == ref_arrays[rel].dtype, rel
            if np.issubdtype(ref_arrays[rel].dtype, np.floating):
                np.testing.assert_allclose(arrays[rel], ref_arrays[rel], rtol=RTOL, atol=ATOL, err_msg=rel)
            else:
                np.testing.assert_array_equal(arrays[rel], ref_arrays[rel], err_msg=rel)
        elif "json" in ref:  # a JSON object is unordered: compared as a value, not as bytes
            assert _close(files[rel]["json"], ref["json"]), rel
        elif "table" in ref:
            assert _close(files[rel]["table"], ref["table"]), f"{rel} differs from the golden reference"
        else:
            assert files[rel]["sha256"] == ref["sha256"], f"{rel} differs from the golden reference"


def test_float_tolerance_is_tight():
    assert _close({"a": [1.0, "x", "0.5"]}, {"a": [1.0 + 1e-9, "x", "0.5000000001"]})
    assert not _close({"a": 1.0}, {"a": 1.001})
    assert not _close(["0.5"], ["0.51"])
    assert not _close({"a": True}, {"a": 1.0})
