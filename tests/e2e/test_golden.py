"""A run of the demo-sized study gives the stored derivatives, sidecars and reports, voxel for
voxel (the reference and its regeneration: ``tests/golden.py``, ``tests/data/golden/``)."""

import numpy as np
import pytest
from golden import CASES, read_reference, run_case, snapshot

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("case", CASES)
def test_outputs_equal_the_golden_reference(case, tmp_path):
    files, arrays = snapshot(run_case(case, tmp_path), tmp_path)
    ref_files, ref_arrays = read_reference(case)
    assert sorted(files) == sorted(ref_files), "the set of output files changed"
    for rel, ref in ref_files.items():
        if rel in ref_arrays:  # NIfTI: header bytes, then the data voxel for voxel (NaN where NaN)
            np.testing.assert_array_equal(arrays[rel + "::header"], ref_arrays[rel + "::header"], err_msg=rel)
            assert arrays[rel].dtype == ref_arrays[rel].dtype, rel
            np.testing.assert_array_equal(arrays[rel], ref_arrays[rel], err_msg=rel)
        if "json" in ref:  # a JSON object is unordered: compared as a value, not as bytes
            assert files[rel]["json"] == ref["json"], rel
        else:
            assert files[rel]["sha256"] == ref["sha256"], f"{rel} differs from the golden reference"
