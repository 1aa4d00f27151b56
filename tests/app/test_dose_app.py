"""BIDS integration of the dose-reduction network: inputs, errors, outputs, report."""

import json
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.bids_query import collect_sessions
from bidsapp.cli.run import main
from bidsapp.dose_step import read_low_dose_metadata
from bidsapp.nets.weights import read_card
from bidsapp.simulate.dose import DoseRanges, simulate_dose_sample

SMALL = DoseRanges(voxel_mm=(4.5, 4.5), misregistration=(1.0, 1.0))
LOW = "anat/sub-{s}_acq-lowdose_ce-gadobutrol_T1w"


def _write(path, data, affine, sidecar=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, str(path) + ".nii.gz")
    if sidecar is not None:
        Path(str(path) + ".json").write_text(json.dumps(sidecar))


@lru_cache(maxsize=1)
def _sample():
    return simulate_dose_sample(50, SMALL, fraction=0.25, field_strength=3.0, agent="gadobutrol")


def make_dataset(root, subjects=("01",), standard="standarddose", low_sidecar=None):
    """A raw BIDS dataset of dose-only subjects (no DCE): one simulated 4.5 mm brain for every subject."""
    (root / "dataset_description.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "dose", "BIDSVersion": "1.10.0"}))
    for s in subjects:
        sample = _sample()
        pair, affine, folder = sample.pair, sample.grid.affine, root / f"sub-{s}"
        common = {"MagneticFieldStrength": 3.0, "FlipAngle": 15.0}
        _write(folder / f"anat/sub-{s}_T1w", pair.pre, affine, common)
        meta = (
            low_sidecar
            if low_sidecar is not None
            else {**common, "ContrastBolusAgent": "gadobutrol", "DoseFraction": 0.25}
        )
        _write(folder / LOW.format(s=s), pair.low, affine, meta)
        if standard:
            _write(
                folder / f"anat/sub-{s}_acq-{standard}_ce-gadobutrol_T1w",
                pair.standard,
                affine,
                {**common, "ContrastBolusAgent": "gadobutrol", "DoseFraction": 1.0},
            )
    return root


def test_low_dose_sidecar_errors_name_file_and_field(tmp_path):
    low = tmp_path / "sub-01_acq-lowdose_ce-gadobutrol_T1w.nii.gz"
    sidecar = low.with_name(low.name.replace(".nii.gz", ".json"))
    with pytest.raises(ValueError, match="sidecar not found"):
        read_low_dose_metadata(low)
    good = {"DoseFraction": 0.25, "MagneticFieldStrength": 3.0, "ContrastBolusAgent": "Gadovist"}
    sidecar.write_text(json.dumps(good))
    assert read_low_dose_metadata(low) == (0.25, "DoseFraction (sidecar)", 3.0, "Gadovist")
    assert read_low_dose_metadata(low, 0.1)[:2] == (0.1, "--dose-fraction")
    for field, value in (
        ("DoseFraction", 1.5),
        ("DoseFraction", None),
        ("MagneticFieldStrength", "3T"),
        ("ContrastBolusAgent", ""),
    ):
        sidecar.write_text(json.dumps({**good, field: value}))
        with pytest.raises(ValueError, match=f"{sidecar.name}: {field}"):
            read_low_dose_metadata(low)
    sidecar.write_text(json.dumps({**good, "ContrastBolusAgent": "unobtainium"}))
    with pytest.raises(ValueError, match=f"{sidecar.name}: ContrastBolusAgent"):
        read_low_dose_metadata(low)


def test_sessions_with_low_dose_images_are_selected_without_dce(tmp_path):
    bids = make_dataset(tmp_path / "bids", subjects=("01", "02"), standard="fulldose")
    (bids / "sub-02" / "anat" / "sub-02_acq-fulldose_ce-gadobutrol_T1w.nii.gz").unlink()
    sessions = collect_sessions(bids)
    assert [s.subject for s in sessions] == ["01", "02"]
    first, second = sessions
    assert first.dce is None and first.dose_pre.name == "sub-01_T1w.nii.gz"
    assert first.dose_low.name == "sub-01_acq-lowdose_ce-gadobutrol_T1w.nii.gz"
    assert first.dose_standard.name == "sub-01_acq-fulldose_ce-gadobutrol_T1w.nii.gz"
    assert second.dose_standard is None
    (bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz").unlink()
    with pytest.raises(ValueError, match="sub-02_acq-lowdose_ce-gadobutrol_T1w.nii.gz: no pre-contrast"):
        collect_sessions(bids)


@pytest.mark.slow
def test_participant_level_writes_the_dose_derivatives(tmp_path):
    bids = make_dataset(tmp_path / "bids")
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"), "--skip-bids-validation"])
    assert code == 0
    anat = out / "sub-01" / "anat"
    synth = anat / "sub-01_ce-gadobutrol_desc-synthSD_T1w.nii.gz"
    ce = anat / "sub-01_ce-gadobutrol_desc-ceSignal_T1w.nii.gz"
    low = nib.load(str(bids / "sub-01" / (LOW.format(s="01") + ".nii.gz")))
    for path in (synth, ce):
        img = nib.load(str(path))
        assert img.shape == low.shape and np.allclose(img.affine, low.affine)
        assert np.isfinite(np.asarray(img.dataobj)).all()
    meta = json.loads(synth.with_name(synth.name.replace(".nii.gz", ".json")).read_text())
    assert meta["DoseFraction"] == 0.25 and meta["DoseFractionSource"] == "DoseFraction (sidecar)"
    assert meta["NetworkWeightsSHA256"] == read_card("dose")["sha256"]
    assert meta["Conditioning"]["field_strength_t"] == 3.0
    comparison = meta["ComparisonWithStandardDose"]
    assert comparison["PSNR"] > comparison["NaiveBaselinePSNR"]
    assert (out / "sub-01" / "figures" / "sub-01_ce-gadobutrol_desc-dose_T1w.png").exists()
    report = (out / "sub-01.html").read_text()
    assert "Gadolinium dose reduction" in report
    assert "Pinetz" in (out / "logs" / "CITATION.md").read_text()


@pytest.mark.slow
def test_bad_low_dose_sidecar_fails_without_derivatives(tmp_path, capsys):
    bids = make_dataset(
        tmp_path / "bids",
        standard=None,
        low_sidecar={"MagneticFieldStrength": 3.0, "ContrastBolusAgent": "gadobutrol"},
    )
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "-w", str(tmp_path / "work"), "--skip-bids-validation"])
    assert code != 0
    assert "DoseFraction" in capsys.readouterr().err
    assert not list(out.glob("sub-01/anat/*synthSD*"))
    code = main(
        [
            str(bids),
            str(out),
            "participant",
            "-w",
            str(tmp_path / "work"),
            "--skip-bids-validation",
            "--dose-fraction",
            "0.25",
        ]
    )
    assert code == 0
    sidecar = out / "sub-01" / "anat" / "sub-01_ce-gadobutrol_desc-synthSD_T1w.json"
    assert json.loads(sidecar.read_text())["DoseFractionSource"] == "--dose-fraction"


def test_dose_stage_joins_a_dce_session_and_runs_alone_without_dce(tmp_path):
    from bidsapp.bids_query import SessionInputs
    from bidsapp.cli.run import parse_config
    from workflows.base import init_single_session_wf

    config = parse_config(
        [str(tmp_path), str(tmp_path / "out"), "participant", "--dose-fraction", "0.2", "--models", "patlak"]
    )
    dose = {"dose_pre": tmp_path / "pre.nii.gz", "dose_low": tmp_path / "low.nii.gz"}
    for name in ("pre", "low", "dce", "v1"):
        (tmp_path / f"{name}.nii.gz").touch()  # the interfaces check that their input files exist
    with_dce = SessionInputs("01", "a", dce=tmp_path / "dce.nii.gz", vfa=[tmp_path / "v1.nii.gz"], **dose)
    names = init_single_session_wf(config=config, inputs=with_dce, work_dir=tmp_path).list_node_names()
    assert "dose_wf.synthesize" in names and "fit_patlak_wf.fit" in names
    alone = init_single_session_wf(config=config, inputs=SessionInputs("01", "b", **dose), work_dir=tmp_path)
    assert {"dose_wf.synthesize", "outputs_wf.datasink"} <= set(alone.list_node_names())
    assert not any(name.startswith(("motion_wf", "fit_")) for name in alone.list_node_names())
    node = alone.get_node("dose_wf").get_node("synthesize")
    assert node.inputs.dose_fraction == 0.2 and node.inputs.low_file == str(tmp_path / "low.nii.gz")
