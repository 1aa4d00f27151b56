"""Convert the simulator's DICOM and compare with the simulator's own BIDS output.

The simulator writes BIDS and DICOM from the same arrays (``--format both``). DICOM
stores 12-bit integers, so converted values equal the simulated ones to within half a
stored step (``1 / StoredValueScale``); Siemens-style DICOM has no rescale tags, so its
converted values are the stored integers and are compared after dividing by the
scale the simulator recorded. Affines must agree to 1e-4 mm and VolumeTiming to 1 ms.
"""

import json

import nibabel as nib
import numpy as np
import pytest
from tools import bids_validator_errors

from bidsapp.conversion import convert_dicom_study
from bidsapp.simulate.geometry import Grid
from bidsapp.simulate.protocol import Protocol
from bidsapp.simulate.study import simulate_study

pytestmark = pytest.mark.slow


def _simulate(root, vendor, matrix, separate_study):
    simulate_study(
        root,
        n_subjects=1,
        fmt="both",
        vendor=vendor,
        grid=Grid(matrix=matrix),
        protocol=Protocol(n_frames=12),
        dose_pairs=True,
        vfa_separate_study=separate_study,
        seed=3,
    )
    return root / "sourcedata" / "dicom" / "sub-01"


@pytest.mark.parametrize(
    "vendor,matrix,separate_study",
    [
        ("siemens", (16, 12, 4), False),
        ("ge", (16, 12, 4), True),
        ("philips", (16, 12, 4), False),
        ("siemens", (16, 12, 1), True),  # single slice, VFA in another study, AcquisitionTime only
    ],
)
def test_converted_simulator_dicom_equals_simulator_bids(tmp_path, vendor, matrix, separate_study):
    sim = tmp_path / "sim"
    dicom = _simulate(sim, vendor, matrix, separate_study)
    out = tmp_path / "converted"
    result = convert_dicom_study(dicom, out, "01")
    assert result.ok, result.errors
    info = json.loads((dicom / "simulation.json").read_text())
    assert info["VFASeparateStudy"] == separate_study
    compared = set()
    for record in info["series"]:
        name = record["bids_name"]
        expected, got = nib.load(sim / name), nib.load(out / name)
        data = got.get_fdata()
        if vendor == "siemens":
            data = data / record["StoredValueScale"]
        step = 1.0 / record["StoredValueScale"]
        assert got.shape == expected.shape, name
        assert np.max(np.abs(data - expected.get_fdata())) <= 0.5 * step * (1 + 1e-6), name
        assert np.allclose(got.affine, expected.affine, atol=1e-4, rtol=0), name
        compared.add(record["role"])
    assert {"vfa", "dce", "t1w_pre", "t1w_lowdose", "t1w_fulldose"} <= compared
    want = json.loads((sim / "sub-01/perf/sub-01_dce.json").read_text())
    got = json.loads((out / "sub-01/perf/sub-01_dce.json").read_text())
    assert np.max(np.abs(np.array(got["VolumeTiming"]) - want["VolumeTiming"])) < 1e-3
    for key in (
        "FlipAngle",
        "RepetitionTimeExcitation",
        "EchoTime",
        "MagneticFieldStrength",
        "ContrastBolusAgent",
        "ContrastBolusIngredient",
        "ContrastBolusTotalDose",
        "ContrastBolusDose",
        "ContrastBolusDoseUnits",
    ):
        assert got[key] == pytest.approx(want[key]), key
    for index in range(1, 5):
        want_vfa = json.loads((sim / f"sub-01/anat/sub-01_flip-{index}_VFA.json").read_text())
        got_vfa = json.loads((out / f"sub-01/anat/sub-01_flip-{index}_VFA.json").read_text())
        for key in ("FlipAngle", "RepetitionTimeExcitation", "PulseSequenceType", "EchoTime"):
            assert got_vfa[key] == pytest.approx(want_vfa[key]), key
    assert bids_validator_errors(out) == []
