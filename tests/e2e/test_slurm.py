"""dcequant on a real single-node SLURM cluster (Debian's slurm-wlm + munge, loopback only):
the recipe of docs/hpc.md — participants as array tasks (docs/hpc/participant_array.sbatch), the
group level after them (docs/hpc/group.sbatch) — and Nipype's SLURM plugin with
docs/hpc/nipype_slurm.yml. Outputs are checked, not exit codes: without cgroups or accounting, a
job that failed looks like one that succeeded to ``sbatch --wait``.
"""

import os
import sys
import time
from pathlib import Path

import pytest
from derivative_checks import check_all, check_dataset, check_subject
from slurm_cluster import SlurmCluster, install_binaries, missing_binaries

from bidsapp.cli.run import main
from bidsapp.simulate import Grid, simulate_study

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
HPC = REPO / "docs" / "hpc"
GRID = Grid((16, 16, 2), (220 / 16, 220 / 16, 6.0))
OPTIONS = ["--aif", "parker", "--skip-bids-validation"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the SLURM test starts slurmd, which must run as root (CI runs as root)")
    if missing_binaries():
        problem = install_binaries()
        if missing_binaries():
            pytest.skip(
                f"SLURM/munge not installable here ({problem}); missing {', '.join(missing_binaries())}"
            )
    root = tmp_path_factory.mktemp("slurm")
    cluster = SlurmCluster(root / "cluster", cpus=2, memory_mb=8000)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("slurm_study")
    simulate_study(root / "bids", n_subjects=2, n_sessions=1, fmt="bids", grid=GRID, seed=0)
    return root


def test_participants_as_array_tasks_then_group(cluster, study):
    out, work = study / "out", study / "work"
    env = {
        **cluster.env,
        "PYTHONPATH": str(REPO),
        "DCEQUANT": f"{sys.executable} -m bidsapp.cli.run",
        "DCEQUANT_WORK_DIR": str(work),
    }
    # one CPU and 2 GB per task so that both tasks run at once on the 2-CPU node
    array = cluster.run(
        [
            "sbatch",
            "--parsable",
            "--array=1-2",
            "--cpus-per-task=1",
            "--mem=2G",
            str(HPC / "participant_array.sbatch"),
            "bids",
            "out",
            *OPTIONS,
        ],
        env=env,
        cwd=study,
    )
    array_id = array.strip().split(";")[0]
    group = cluster.run(
        [
            "sbatch",
            "--parsable",
            f"--dependency=afterok:{array_id}",
            "--mem=1G",
            str(HPC / "group.sbatch"),
            "bids",
            "out",
        ],
        env=env,
        cwd=study,
    )
    group_id = group.strip().split(";")[0]
    cluster.wait_for_jobs([array_id, group_id], timeout=300)

    logs = {p.name: p.read_text() for p in study.glob("dcequant-*.log")}
    assert sorted(logs) == sorted(
        [
            f"dcequant-participant-{array_id}_1.log",
            f"dcequant-participant-{array_id}_2.log",
            f"dcequant-group-{group_id}.log",
        ]
    ), (logs, cluster.log_tail("slurmctld"))
    for task, subject in ((1, "01"), (2, "02")):
        log = logs[f"dcequant-participant-{array_id}_{task}.log"]
        assert f"task {task}: sub-{subject}" in log and f"report for sub-{subject}" in log, log[-3000:]
        assert (work / f"sub-{subject}" / "dcequant_wf").is_dir()
    assert "group report" in logs[f"dcequant-group-{group_id}.log"], logs[f"dcequant-group-{group_id}.log"][
        -3000:
    ]
    check_all(out, ["01", "02"])
    table = out / "group_desc-roistats_stats.tsv"
    assert table.stat().st_mtime >= max((out / f"sub-{s}.html").stat().st_mtime for s in ("01", "02"))


def test_nipype_slurm_plugin(cluster, study, monkeypatch):
    """One participant with ``--use-plugin docs/hpc/nipype_slurm.yml``: every node a SLURM job
    (one model only: each job costs a Python start-up, ~5 s on a busy 2-core machine)."""
    for key in ("SLURM_CONF", "LOGNAME"):
        monkeypatch.setenv(key, cluster.env[key])
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out, work = study / "out_plugin", study / "work_plugin"
    started = time.time()
    code = main(
        [
            str(study / "bids"),
            str(out),
            "participant",
            "--participant-label",
            "01",
            "-w",
            str(work),
            "--use-plugin",
            str(HPC / "nipype_slurm.yml"),
            "--models",
            "patlak",
            *OPTIONS,
        ]
    )
    assert code == 0
    batch = list((work / "dcequant_wf" / "batch").glob("batchscript_*.sh"))
    assert any("fit_patlak_wf_fit" in p.name for p in batch), f"the fit was not a SLURM job: {batch}"
    assert min(p.stat().st_mtime for p in batch) >= started
    check_dataset(out)
    check_subject(out, "01", maps={"patlak": ("Ktrans", "vp")})
