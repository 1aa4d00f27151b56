"""A DCE series timed by ``RepetitionTime`` runs end to end and gives the same maps as the
same data timed by ``VolumeTiming`` (the two BIDS forms of a 4-D series' timing)."""

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.simulate import Grid, Protocol, simulate_study

pytestmark = pytest.mark.slow
GRID = Grid((16, 16, 2), (220 / 16, 220 / 16, 6.0))


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("timing")
    out = {}
    for field in ("VolumeTiming", "RepetitionTime"):
        bids = root / field / "bids"
        simulate_study(bids, n_subjects=1, grid=GRID, protocol=Protocol(n_frames=30), timing_field=field)
        # the input is validated by bids-validator-deno (no --skip-bids-validation): both forms are valid BIDS
        assert main([str(bids), str(root / field / "out"), "participant", "-w", str(root / field / "work")]) == 0
        out[field] = root / field / "out"
    return out


def test_repetition_time_gives_the_same_maps_as_volume_timing(outputs):
    maps = sorted(p.relative_to(outputs["VolumeTiming"]) for p in outputs["VolumeTiming"].rglob("*.nii.gz"))
    assert len(maps) > 10
    for rel in maps:
        a = np.asarray(nib.load(outputs["VolumeTiming"] / rel).dataobj)
        b = np.asarray(nib.load(outputs["RepetitionTime"] / rel).dataobj)
        np.testing.assert_array_equal(a, b, err_msg=str(rel))
