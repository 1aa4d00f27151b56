"""A DCE series timed by ``RepetitionTime`` runs end to end and gives the same maps as the
same data timed by ``VolumeTiming`` (the two BIDS forms of a 4-D series' timing)."""

import json

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.session_steps import signal_mask

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, simulated_study):
    root = tmp_path_factory.mktemp("timing")
    out = {}
    for field in ("VolumeTiming", "RepetitionTime"):
        bids = simulated_study(
            matrix=(16, 16, 2),
            voxel_size=(220 / 16, 220 / 16, 6.0),
            protocol={"n_frames": 30},
            timing_field=field,
        )
        # the input is validated by bids-validator-deno (no --skip-bids-validation): both forms are valid BIDS
        assert (
            main([str(bids), str(root / field / "out"), "participant", "-w", str(root / field / "work")]) == 0
        )
        out[field] = root / field / "out"
        out[field, "bids"] = bids
    return out


def test_repetition_time_gives_the_same_maps_as_volume_timing(outputs):
    maps = sorted(p.relative_to(outputs["VolumeTiming"]) for p in outputs["VolumeTiming"].rglob("*.nii.gz"))
    assert len(maps) > 10
    for rel in maps:
        a = np.asarray(nib.load(outputs["VolumeTiming"] / rel).dataobj)
        b = np.asarray(nib.load(outputs["RepetitionTime"] / rel).dataobj)
        np.testing.assert_array_equal(a, b, err_msg=str(rel))


#: every kind of float map the participant level writes (datatype, desc, suffix)
FLOAT_MAPS = (
    [
        ("anat", "vfa", "T1map"),
        ("anat", "vfa", "M0map"),
        ("anat", "vfa", "T1residual"),
        ("perf", "conc", "dce"),
    ]
    + [
        ("perf", desc, p)
        for desc in ("extendedtofts", "extendedtoftsStderr")
        for p in ("Ktrans", "ve", "vp", "kep")
    ]
    + [("perf", desc, p) for desc in ("patlak", "patlakStderr") for p in ("Ktrans", "vp")]
    + [("perf", "extendedtofts", "R2map"), ("perf", "patlak", "R2map")]
)


def test_not_estimated_is_nan_in_every_map_kind(outputs):
    out, bids = outputs["VolumeTiming"], outputs["VolumeTiming", "bids"]
    # background as the analysis mask defines it: first-frame signal below 10 % of its 99th percentile
    background = ~signal_mask(np.asarray(nib.load(bids / "sub-01/perf/sub-01_dce.nii.gz").dataobj, float))
    assert background.sum() > 20
    for datatype, desc, suffix in FLOAT_MAPS:
        path = out / f"sub-01/{datatype}/sub-01_desc-{desc}_{suffix}.nii.gz"
        data = np.asarray(nib.load(path).dataobj)
        assert data.dtype == np.float32, path.name
        values = data[background] if data.ndim == 3 else data[background].ravel()
        assert not np.any(values == 0.0), f"{path.name}: background voxels hold 0, not NaN"
        if datatype == "perf":  # outside the analysis mask nothing is estimated
            assert np.isnan(values).all(), f"{path.name}: background voxels hold numbers, not NaN"
        else:  # the VFA fit runs everywhere; noise rarely passes its validity rule
            assert np.isnan(values).mean() > 0.8, f"{path.name}: background voxels hold numbers, not NaN"
        assert np.isfinite(data).any(), f"{path.name}: nothing estimated"


def test_report_example_fits_are_the_fits_that_were_made(outputs):
    """The curves drawn in the report are model_curve of the written parameters with the
    written AIF on its own grid: their R² equals the R² map the fit wrote."""
    from bidsapp import model_curve
    from bidsapp.report.subject import example_fit_curves

    perf = outputs["VolumeTiming"] / "sub-01" / "perf"
    load = lambda name: np.asarray(nib.load(perf / f"sub-01_{name}.nii.gz").dataobj, float)  # noqa: E731
    conc = load("desc-conc_dce")
    t = np.asarray(json.loads((perf / "sub-01_desc-conc_dce.json").read_text())["VolumeTiming"])
    table = np.loadtxt(perf / "sub-01_desc-aif_timeseries.tsv", skiprows=1)
    aif_meta = json.loads((perf / "sub-01_desc-aif_timeseries.json").read_text())
    fine = table.shape[0] > t.size
    assert fine == ("PopulationAIF" in aif_meta)  # a population AIF is written on its sub-step grid
    for model, params in (("extended_tofts", ("Ktrans", "ve", "vp")), ("patlak", ("Ktrans", "vp"))):
        label = model.replace("_", "")
        quality, r2 = load(f"desc-{label}_mask") > 0, load(f"desc-{label}_R2map")
        examples = example_fit_curves(
            model, perf, conc, t, table[:, 1], table[:, 0] if fine else None, quality, r2
        )
        assert examples
        for name, measured, fitted in examples:
            voxel = tuple(int(c) for c in name.split("(")[1].split(")")[0].split(","))
            written = {p: load(f"desc-{label}_{p}")[voxel] for p in params}
            expected = model_curve(model, written, t, table[:, 1], aif_times=table[:, 0])
            np.testing.assert_allclose(fitted, expected, rtol=1e-9, atol=1e-12)
            ok = np.isfinite(measured)  # samples the SPGR inversion flagged are NaN and not fitted
            r2_drawn = 1 - np.sum((measured[ok] - fitted[ok]) ** 2) / np.sum(
                (measured[ok] - measured[ok].mean()) ** 2
            )
            assert abs(r2_drawn - r2[voxel]) < 2e-3, (model, name, r2_drawn, r2[voxel])
