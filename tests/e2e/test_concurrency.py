"""Two ``dcequant ... participant --participant-label X`` processes at once into ONE output folder
(two SLURM array tasks, two shells): every shared and per-subject file must stay intact and complete.

The study is DICOM only, so both runs also convert into the same raw dataset at the same time
(``participants.tsv``, ``dataset_description.json``, ``.bidsignore`` there). Paths are relative
on purpose: Nipype runs every node in its own working folder.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from derivative_checks import check_dataset, check_group, check_subject

from bidsapp.cli.run import main
from bidsapp.simulate import Grid, simulate_study

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
SUBJECTS = ("01", "02")
GRID = Grid((16, 16, 2), (220 / 16, 220 / 16, 6.0))


def _participant(cwd, subject):
    """Start ``python -m bidsapp.cli.run bids out participant --participant-label SUBJECT``."""
    cmd = [
        sys.executable,
        "-m",
        "bidsapp.cli.run",
        "bids",
        "out",
        "participant",
        "--participant-label",
        subject,
        "-w",
        "work",
        "--skip-bids-validation",
        "--aif",
        "parker",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_two_participants_at_once_into_one_folder(tmp_path, monkeypatch):
    simulate_study(tmp_path / "bids", n_subjects=len(SUBJECTS), n_sessions=1, fmt="dicom", grid=GRID, seed=0)
    procs = {subject: _participant(tmp_path, subject) for subject in SUBJECTS}
    for subject, proc in procs.items():
        log, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"participant {subject} failed:\n{log[-3000:]}"
        assert f"report for sub-{subject}" in log

    out = tmp_path / "out"
    check_dataset(out)
    for subject in SUBJECTS:
        check_subject(out, subject)
    assert sorted(p.name for p in out.glob("sub-*") if p.is_dir()) == ["sub-01", "sub-02"]
    assert not list((out / "logs").glob("crash/*")), "a run left crash files"
    raw = tmp_path / "bids"
    assert (raw / "participants.tsv").read_text().split() == ["participant_id", "sub-01", "sub-02"]
    assert (raw / ".bidsignore").read_text().splitlines() == ["*_dce.*"]
    assert (raw / "dataset_description.json").read_text().rstrip().endswith("}")

    monkeypatch.chdir(tmp_path)
    assert main(["bids", "out", "group"]) == 0
    check_group(out, SUBJECTS)
