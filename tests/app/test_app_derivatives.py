"""Derivative naming, dataset_description and the all-or-nothing session commit."""

import json
import os

import pytest

from bidsapp import derivatives
from bidsapp.derivatives import (
    Entry,
    commit_subject,
    derivative_path,
    model_label,
    stage_session,
    write_dataset_description,
)
from bidsapp.io_utils import LOCK_NAME


def test_names_come_from_entities(tmp_path):
    path = derivative_path(tmp_path, "01", "2", "perf", "Ktrans", model_label("extended_tofts"))
    assert path == tmp_path / "sub-01/ses-2/perf/sub-01_ses-2_desc-extendedtofts_Ktrans.nii.gz"
    assert (
        derivative_path(tmp_path, "01", None, "anat", "T1map", "vfa").name == "sub-01_desc-vfa_T1map.nii.gz"
    )
    assert derivatives.stderr_label("2cxm") == "2cxmStderr"


def test_dataset_description(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "dataset_description.json").write_text(json.dumps({"Name": "x", "DatasetDOI": "doi:10.1/abc"}))
    desc = write_dataset_description(tmp_path / "out", raw)
    on_disk = json.loads((tmp_path / "out" / "dataset_description.json").read_text())
    assert on_disk == desc and desc["DatasetType"] == "derivative"
    generated = desc["GeneratedBy"][0]
    assert (
        generated["Name"] == "dcequant"
        and generated["Version"]
        and generated["CodeURL"].startswith("https://")
    )
    assert desc["SourceDatasets"][0]["DOI"] == "doi:10.1/abc"
    assert "*_dce.*" in (tmp_path / "out" / ".bidsignore").read_text()


def _entries(tmp_path, n):
    entries = []
    for i in range(n):
        src = tmp_path / f"src{i}.nii.gz"
        src.write_bytes(b"data%d" % i)
        entries.append(Entry(str(src), "perf", f"P{i}", "m", sidecar={"Units": "1/min"}))
    return entries


def test_stage_then_commit_writes_files_and_sidecars(tmp_path):
    out = tmp_path / "out"
    staged = stage_session(out, "01", "1", _entries(tmp_path, 2))
    staged += stage_session(out, "01", "2", _entries(tmp_path, 1))
    assert not list(out.glob("sub-01"))  # nothing visible before the commit
    written = commit_subject(out, "01", staged)
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "sub-01/ses-1/perf/sub-01_ses-1_desc-m_P0.json",
        "sub-01/ses-1/perf/sub-01_ses-1_desc-m_P0.nii.gz",
        "sub-01/ses-1/perf/sub-01_ses-1_desc-m_P1.json",
        "sub-01/ses-1/perf/sub-01_ses-1_desc-m_P1.nii.gz",
        "sub-01/ses-2/perf/sub-01_ses-2_desc-m_P0.json",
        "sub-01/ses-2/perf/sub-01_ses-2_desc-m_P0.nii.gz",
    ]
    sidecar = json.loads((out / "sub-01/ses-1/perf/sub-01_ses-1_desc-m_P0.json").read_text())
    assert sidecar == {"Units": "1/min", "SkullStripped": False}
    assert not (out / derivatives.STAGING_DIR).exists()


def test_restaging_a_session_replaces_its_files(tmp_path):
    out = tmp_path / "out"
    stage_session(out, "01", None, _entries(tmp_path, 3))
    staged = stage_session(out, "01", None, _entries(tmp_path, 1))
    assert len(list((out / derivatives.STAGING_DIR).rglob("*.nii.gz"))) == 1
    commit_subject(out, "01", staged)
    assert [p.name for p in out.rglob("*.nii.gz")] == ["sub-01_desc-m_P0.nii.gz"]


def test_failed_commit_leaves_no_new_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    staged = stage_session(out, "01", "1", _entries(tmp_path, 3))
    calls = {"n": 0}
    real_replace = os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(derivatives.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        commit_subject(out, "01", staged)
    assert [p for p in out.rglob("*") if p.is_file() and p.name != LOCK_NAME] == []


def test_missing_source_fails_while_staging(tmp_path):
    entries = _entries(tmp_path, 2)
    entries[1].source = str(tmp_path / "gone.nii.gz")
    with pytest.raises(FileNotFoundError):
        stage_session(tmp_path / "out", "01", None, entries)
    assert not list((tmp_path / "out").glob("sub-*"))
