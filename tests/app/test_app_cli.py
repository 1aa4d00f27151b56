"""Exit codes and the quick modes of the ``dcequant`` command."""

import pytest

from bidsapp import __version__
from bidsapp.cli.run import main


@pytest.fixture(scope="module")
def dataset(tiny_study):
    return tiny_study


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and __version__ in capsys.readouterr().out


def test_bad_analysis_level_exits_17(dataset, tmp_path, capsys):
    assert main([str(dataset), str(tmp_path / "out"), "session"]) == 17
    assert "analysis_level" in capsys.readouterr().err


def test_unknown_participant_exits_18(dataset, tmp_path, capsys):
    code = main(
        [
            str(dataset),
            str(tmp_path / "out"),
            "participant",
            "--participant-label",
            "99",
            "--skip-bids-validation",
        ]
    )
    assert code == 18 and "99" in capsys.readouterr().err


def test_invalid_bids_exits_16(dataset, tmp_path, capsys):
    stray = next(dataset.glob("sub-*/**/anat")) / "not_bids_at_all.nii.gz"
    stray.write_bytes(b"x")
    try:
        assert main([str(dataset), str(tmp_path / "out"), "participant"]) == 16
    finally:
        stray.unlink()
    assert "not valid BIDS" in capsys.readouterr().err


def test_bad_option_value_exits_1_with_one_line(dataset, tmp_path, capsys):
    assert main([str(dataset), str(tmp_path / "out"), "participant", "--hematocrit", "3"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--hematocrit" in err and len(err.splitlines()) == 1


def test_missing_bids_dir_exits_1(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "out"), "participant"]) == 1
    assert "nope" in capsys.readouterr().err


def test_requesting_an_unknown_network_fails_clearly(dataset, tmp_path, capsys):
    assert main([str(dataset), str(tmp_path / "out"), "participant", "--nets", "unet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--nets" in err and "unet" in err and "cnn, punet" in err and len(err.splitlines()) == 1


def test_boilerplate_only_writes_citation_and_nothing_else(dataset, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            str(dataset),
            str(out),
            "participant",
            "--boilerplate-only",
            "--skip-bids-validation",
            "--models",
            "tofts",
            "2cxm",
            "--fit-delay",
            "-w",
            str(tmp_path / "work"),
        ]
    )
    assert code == 0
    text = (out / "logs" / "CITATION.md").read_text()
    assert "standard Tofts model" in text and "two-compartment exchange model" in text
    assert "bolus-arrival delay" in text and "## References" in text and "[1]" in text
    assert not list(out.glob("sub-*")) and not (tmp_path / "work").exists()


def test_group_without_participant_outputs_exits_18(dataset, tmp_path):
    assert main([str(dataset), str(tmp_path / "out"), "group"]) == 18


def test_plugin_file_and_default_plugins(tmp_path):
    from bidsapp.cli.run import AppError, _plugin, parse_config

    callback = object()
    base = ["b", "o", "participant"]
    assert _plugin(parse_config(base), callback) == ("Linear", {"status_callback": callback})
    plugin, args = _plugin(parse_config(base + ["--nprocs", "4", "--mem", "8"]), callback)
    assert plugin == "MultiProc" and args["n_procs"] == 4 and args["memory_gb"] == 8
    path = tmp_path / "slurm.json"
    path.write_text('{"plugin": "SLURM", "plugin_args": {"sbatch_args": "--time=00:10:00", "max_jobs": 5}}')
    plugin, args = _plugin(parse_config(base + ["--use-plugin", str(path)]), callback)
    assert plugin == "SLURM" and args == {"sbatch_args": "--time=00:10:00", "max_jobs": 5}
    path.write_text('{"plugin_args": {}}')
    with pytest.raises(AppError, match="'plugin'"):
        _plugin(parse_config(base + ["--use-plugin", str(path)]), callback)


def test_plugin_file_in_yaml(tmp_path):
    from bidsapp.cli.run import _plugin, parse_config

    pytest.importorskip("yaml")  # PyYAML is optional (JSON plugin files need nothing)
    path = tmp_path / "slurm.yml"
    path.write_text("plugin: SGE\nplugin_args:\n  qsub_args: -q short\n")
    plugin, args = _plugin(parse_config(["b", "o", "participant", "--use-plugin", str(path)]), None)
    assert plugin == "SGE" and args == {"qsub_args": "-q short"}
