from bidsapp import bids_raw


def test_names():
    assert (
        bids_raw.vfa_path("/d", "sub-01", "ses-1", 2).as_posix()
        == "/d/sub-01/ses-1/anat/sub-01_ses-1_flip-2_VFA.nii.gz"
    )
    assert bids_raw.dce_path("/d", "01", None).as_posix() == "/d/sub-01/perf/sub-01_dce.nii.gz"
    assert bids_raw.b1_path("/d", "01", "2").name == "sub-01_ses-2_TB1map.nii.gz"


def test_participants_merge_keeps_existing(tmp_path):
    bids_raw.update_participants(tmp_path, [{"participant_id": "01", "group": "high"}])
    bids_raw.update_participants(tmp_path, [{"participant_id": "sub-02", "age": 40}])
    lines = (tmp_path / "participants.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["participant_id", "group", "age"]
    assert lines[1].split("\t") == ["sub-01", "high", "n/a"]
    assert lines[2].split("\t") == ["sub-02", "n/a", "40"]


def test_bidsignore_idempotent(tmp_path):
    bids_raw.ensure_bidsignore(tmp_path)
    bids_raw.ensure_bidsignore(tmp_path)
    assert (tmp_path / ".bidsignore").read_text() == "*_dce.*\n"
