"""Every run records its configuration in logs/; library calls leave the process state alone."""

import json
import subprocess
import sys
from pathlib import Path

from bidsapp import __version__
from bidsapp.cli.run import main, parse_config


def test_each_run_writes_its_effective_configuration(tiny_study, tmp_path):
    out = tmp_path / "out"
    argv = [
        str(tiny_study),
        str(out),
        "participant",
        "--boilerplate-only",
        "--skip-bids-validation",
        "--hematocrit",
        "0.41",
        "--aif",
        "georgiou",
        "--models",
        "tofts",
        "-w",
        str(tmp_path / "work"),
    ]
    assert main(argv) == 0
    assert main(argv) == 0
    records = sorted((out / "logs").glob("config-*.json"))
    assert len(records) == 2 and records[0].name != records[1].name  # one per run, never overwritten
    assert sorted(p.name for p in (out / "logs").iterdir()) == sorted(
        ["CITATION.md", *(r.name for r in records)]
    )
    record = json.loads(records[0].read_text())
    assert record["Config"] == parse_config(argv).to_dict()  # every resolved option, defaults included
    assert record["Config"]["aif"] == "georgiou" and record["Config"]["omp_nthreads"] == 1
    assert record["CommandLine"] == ["dcequant", *argv]
    assert record["Versions"]["dcequant"] == __version__ and record["Versions"]["torch"]
    assert (
        records[0].name.startswith(f"config-{record['Started'][:4]}") and record["RunUUID"] in records[0].name
    )


def test_group_level_records_its_configuration_too(tiny_study, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert main([str(tiny_study), str(out), "group"]) == 18  # no participant outputs yet
    assert len(list((out / "logs").glob("config-*.json"))) == 1


REPO = Path(__file__).resolve().parents[2]
PROCESS_STATE = """
import numpy as np, torch
from bidsapp import fit_model
from bidsapp.fitting import allocator
from bidsapp.runtime import configure_process
threads = torch.get_num_threads()
t = np.arange(20.0) * 3
aif = np.where(t > 10, 5 * np.exp(-(t - 10) / 60), 0.0)
fit_model("tofts", np.outer(np.ones(3), np.convolve(aif, np.exp(-t / 100))[:20] * 0.01), t, aif, device="cpu")
print(allocator._done, torch.get_num_threads() == threads)
configure_process(threads=1, seed=3)
first = float(torch.rand(1))
torch.manual_seed(3)
print(torch.get_num_threads(), first == float(torch.rand(1)))
"""


def test_fit_model_leaves_the_process_alone_and_configure_process_sets_it():
    proc = subprocess.run(
        [sys.executable, "-c", PROCESS_STATE], capture_output=True, text=True, timeout=300, cwd=REPO
    )  # a fresh process: this checkout's bidsapp, no state from other tests
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "False True"  # no allocator tuning, no thread change by the library
    assert lines[1] == "1 True"
