"""Input side of the BIDS App: BIDS queries, sidecars and relaxivity (the baseline: test_bolus_arrival.py)."""

import json
import re

import numpy as np
import pytest

import bidsapp
from bidsapp.acquisition import frame_times, read_dce_acquisition, resolve_relaxivity
from bidsapp.bids_query import NothingSelectedError, collect_sessions, dicom_sessions, load_filter_file
from bidsapp.bids_raw import dce_path
from bidsapp.simulate import Grid, Protocol, simulate_study


@pytest.fixture(scope="module")
def dataset(tiny_study):
    return tiny_study


def test_collect_sessions_finds_every_input(dataset):
    sessions = collect_sessions(dataset)
    assert [s.name for s in sessions] == ["sub-01_ses-01", "sub-01_ses-02", "sub-02_ses-01", "sub-02_ses-02"]
    first = sessions[0]
    assert first.dce.name == "sub-01_ses-01_dce.nii.gz" and first.b1.name == "sub-01_ses-01_TB1map.nii.gz"
    assert [p.name for p in first.vfa] == [f"sub-01_ses-01_flip-{i}_VFA.nii.gz" for i in (1, 2, 3, 4)]
    assert not first.from_dicom


def test_selection_by_labels(dataset):
    sessions = collect_sessions(dataset, participant_label=["sub-02"], session_label=["ses-02"])
    assert [s.name for s in sessions] == ["sub-02_ses-02"]


def test_unknown_participant_is_nothing_selected(dataset):
    with pytest.raises(NothingSelectedError, match="03"):
        collect_sessions(dataset, participant_label=["03"])
    with pytest.raises(NothingSelectedError):
        collect_sessions(dataset, session_label=["9"])


def test_filter_file(dataset, tmp_path):
    path = tmp_path / "filter.json"
    path.write_text(json.dumps({"vfa": {"flip": [1, 4]}}))
    sessions = collect_sessions(dataset, ["01"], ["01"], load_filter_file(path))
    assert [p.name for p in sessions[0].vfa] == [
        "sub-01_ses-01_flip-1_VFA.nii.gz",
        "sub-01_ses-01_flip-4_VFA.nii.gz",
    ]
    path.write_text(json.dumps({"bold": {}}))
    with pytest.raises(ValueError, match="bold"):
        load_filter_file(path)


def test_dicom_only_subjects_are_found(tmp_path):
    (tmp_path / "sourcedata" / "dicom" / "sub-07" / "ses-a").mkdir(parents=True)
    (tmp_path / "sourcedata" / "dicom" / "sub-08").mkdir(parents=True)
    assert set(dicom_sessions(tmp_path)) == {("07", "a"), ("08", None)}
    sessions = collect_sessions(tmp_path)
    assert [s.name for s in sessions] == ["sub-07_ses-a", "sub-08"] and all(s.from_dicom for s in sessions)


def test_dce_sidecar(dataset):
    acq = read_dce_acquisition(dce_path(dataset, "01", "01"), 40)
    assert (acq.tr, acq.flip_angle, acq.field_strength, acq.times[1]) == (0.005, 15.0, 3.0, 5.0)
    assert acq.agent.lower() == "gadobutrol"
    with pytest.raises(ValueError, match="'VolumeTiming' has 40 entries for 12 frames"):
        read_dce_acquisition(dce_path(dataset, "01", "01"), 12)


def test_missing_sidecar_field_is_named(tmp_path):
    nii = tmp_path / "x_dce.nii.gz"
    (tmp_path / "x_dce.json").write_text(json.dumps({"FlipAngle": 15, "VolumeTiming": [0, 1]}))
    with pytest.raises(ValueError, match="RepetitionTimeExcitation"):
        read_dce_acquisition(nii, 2)


@pytest.mark.parametrize(
    "meta, times, tr, field",
    [
        (
            {"VolumeTiming": [3.0, 4.5, 6.5], "RepetitionTimeExcitation": 0.004},
            [0.0, 1.5, 3.5],
            0.004,
            "VolumeTiming",
        ),
        (
            {"RepetitionTime": 4.7, "RepetitionTimeExcitation": 0.0045},
            [0.0, 4.7, 9.4],
            0.0045,
            "RepetitionTime",
        ),
        # a short frame interval is fine when the excitation TR is given separately
        (
            {"RepetitionTime": 0.05, "RepetitionTimeExcitation": 0.002},
            [0.0, 0.05, 0.1],
            0.002,
            "RepetitionTime",
        ),
    ],
)
def test_frame_times_from_either_bids_timing_field(meta, times, tr, field):
    got_times, got_tr, got_field = frame_times(meta, "x_dce.json", 3)
    np.testing.assert_allclose(got_times, times)
    assert (got_tr, got_field) == (tr, field)


@pytest.mark.parametrize(
    "meta, message",
    [
        (
            {"VolumeTiming": [0, 1, 2], "RepetitionTime": 1.0, "RepetitionTimeExcitation": 0.004},
            "x_dce.json: sidecar has both 'VolumeTiming' and 'RepetitionTime'",
        ),
        (
            {"RepetitionTimeExcitation": 0.004},
            "x_dce.json: sidecar field 'VolumeTiming' or 'RepetitionTime' is missing",
        ),
        (
            {"RepetitionTime": 0.005},
            "x_dce.json: sidecar field 'RepetitionTime' = 0.005 s cannot be a frame interval",
        ),
        ({"RepetitionTime": 5.0}, "x_dce.json: sidecar field 'RepetitionTimeExcitation' is missing"),
        ({"RepetitionTime": -5.0, "RepetitionTimeExcitation": 0.004}, "'RepetitionTime' must be positive"),
        ({"VolumeTiming": [0, 2, 1], "RepetitionTimeExcitation": 0.004}, "'VolumeTiming' must increase"),
        (
            {"VolumeTiming": "0 1 2", "RepetitionTimeExcitation": 0.004},
            "'VolumeTiming' must be a list of numbers",
        ),
    ],
)
def test_bad_timing_fields_are_named(meta, message):
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        frame_times(meta, "x_dce.json", 3)
    assert "\n" not in str(err.value)


def test_simulator_writes_both_timing_forms(tmp_path):
    protocol = Protocol(n_frames=6, temporal_resolution=2.5, baseline_frames=2)
    metas = {}
    for field in ("VolumeTiming", "RepetitionTime"):
        root = tmp_path / field
        simulate_study(
            root, n_subjects=1, grid=Grid((4, 4, 1), (40.0, 40.0, 5.0)), protocol=protocol, timing_field=field
        )
        metas[field] = json.loads(dce_path(root, "01", None, ".json").read_text())
        acq = read_dce_acquisition(dce_path(root, "01", None), 6)
        np.testing.assert_allclose(acq.times, np.arange(6) * 2.5)
        assert acq.timing_field == field and acq.tr == protocol.dce_tr
    assert (
        "RepetitionTime" not in metas["VolumeTiming"] and metas["VolumeTiming"]["AcquisitionDuration"] == 2.5
    )
    assert (
        "VolumeTiming" not in metas["RepetitionTime"] and "AcquisitionDuration" not in metas["RepetitionTime"]
    )


def test_relaxivity_resolution():
    assert resolve_relaxivity(4.2, "gadobutrol", 3.0).value == 4.2
    from_agent = resolve_relaxivity(None, "gadobutrol", 1.5)
    assert (
        from_agent.value == pytest.approx(bidsapp.relaxivity_for("gadobutrol", 1.5))
        and not from_agent.warnings
    )
    unknown = resolve_relaxivity(None, None, None)
    assert unknown.value == pytest.approx(bidsapp.relaxivity_for("gadobutrol", 3.0))
    assert any("ContrastBolusAgent" in w for w in unknown.warnings)
    assert any("MagneticFieldStrength" in w for w in unknown.warnings)
