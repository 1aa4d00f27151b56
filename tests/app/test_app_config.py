"""Command-line parsing and the configuration object of dcequant."""

import json
from pathlib import Path

import pytest

from bidsapp.cli.run import AppError, parse_config
from bidsapp.config import DEFAULT_MODELS, AIFChoice, Config, load_config_file, make_config


def test_defaults_match_the_documentation():
    cfg = parse_config(["bids", "out", "participant"])
    assert cfg.models == list(DEFAULT_MODELS) == ["extended_tofts", "patlak"]
    assert cfg.hematocrit == 0.45 and cfg.aif == AIFChoice("auto") and cfg.device == "auto"
    assert cfg.fit_delay is False and cfg.b1_correction is True and cfg.nets is None
    assert cfg.t1_method == "vfa-linear" and cfg.t1_validity == "physical"
    assert cfg.bids_dir == Path("bids").absolute() and cfg.analysis_level == "participant"


def test_aif_is_parsed_once_into_what_it_names():
    """Nipype runs every node in its own folder: a relative AIF table or mask must not
    depend on it; '{subject}' placeholders survive until a session fills them in."""
    table = parse_config(["b", "o", "participant", "--aif", "aif/sub-{subject}.tsv"]).aif
    assert table == AIFChoice("table", str(Path("aif/sub-{subject}.tsv").absolute()))
    assert table.for_session("01", None).path == Path("aif/sub-01.tsv").absolute()
    mask = parse_config(["b", "o", "participant", "--aif", "arteries.nii.gz"]).aif
    assert mask == AIFChoice("mask", str(Path("arteries.nii.gz").absolute())) and str(mask) == mask.value
    assert parse_config(["b", "o", "participant", "--aif", "georgiou"]).aif == AIFChoice(
        "population", "georgiou"
    )
    assert str(parse_config(["b", "o", "participant"]).aif) == "auto"


def test_unknown_aif_fails_at_parse_time():
    with pytest.raises(ValueError, match="--aif 'parkr'"):
        parse_config(["b", "o", "participant", "--aif", "parkr"])


def test_labels_accept_prefixes():
    cfg = parse_config(
        ["b", "o", "participant", "--participant-label", "sub-01", "02", "--session-label", "ses-A", "B"]
    )
    assert cfg.participant_label == ["01", "02"] and cfg.session_label == ["A", "B"]


def test_science_options():
    cfg = parse_config(
        [
            "b",
            "o",
            "participant",
            "--models",
            "tofts",
            "2cxm",
            "--fit-delay",
            "--no-b1-correction",
            "--t10",
            "1.4",
            "--relaxivity",
            "4.5",
            "--hematocrit",
            "0.4",
            "--baseline-frames",
            "6",
            "--aif",
            "parker",
            "--device",
            "cpu",
            "--random-seed",
            "7",
            "-vv",
            "--t1-validity",
            "strict",
        ]
    )
    assert cfg.models == ["tofts", "2cxm"] and cfg.fit_delay and not cfg.b1_correction
    assert (cfg.t10, cfg.relaxivity, cfg.hematocrit, cfg.baseline_frames) == (1.4, 4.5, 0.4, 6)
    assert (cfg.aif, cfg.device, cfg.random_seed, cfg.verbose) == (
        AIFChoice("population", "parker"),
        "cpu",
        7,
        2,
    )
    assert cfg.t1_validity == "strict"


def test_config_file_toml_and_command_line_precedence(tmp_path):
    path = tmp_path / "dcequant.toml"
    path.write_text('models = ["patlak"]\nhematocrit = 0.4\nomp-nthreads = 3\nfit_delay = true\n')
    cfg = parse_config(["b", "o", "participant", "--config-file", str(path), "--hematocrit", "0.42"])
    assert cfg.models == ["patlak"] and cfg.omp_nthreads == 3 and cfg.fit_delay
    assert cfg.hematocrit == 0.42  # command line wins


def test_config_file_json(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"aif": "georgiou", "nprocs": 4, "work_dir": "/scratch/w"}))
    cfg = parse_config(["b", "o", "participant", "--config-file", str(path)])
    assert (
        cfg.aif == AIFChoice("population", "georgiou")
        and cfg.nprocs == 4
        and cfg.work_dir == Path("/scratch/w")
    )


def test_config_file_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("hematokrit = 0.4\n")
    with pytest.raises(ValueError, match=r"bad.toml.*hematokrit"):
        load_config_file(path)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"models": ["nope"]}, "--models"),
        ({"hematocrit": 1.2}, "--hematocrit"),
        ({"t10": -1.0}, "--t10"),
        ({"nprocs": 0}, "--nprocs"),
        ({"baseline_frames": 0}, "--baseline-frames"),
        ({"relaxivity": 0.0}, "--relaxivity"),
        ({"t1_validity": "lenient"}, "--t1-validity"),
    ],
)
def test_invalid_values_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        make_config(options)


def test_bad_analysis_level_has_exit_code_17():
    with pytest.raises(AppError) as info:
        parse_config(["b", "o", "subject"])
    assert info.value.code == 17


def test_to_dict_round_trips_through_json(tmp_path):
    cfg = make_config({"bids_dir": "b", "output_dir": "o", "analysis_level": "group", "roi": ["r.nii.gz"]})
    data = json.loads(json.dumps(cfg.to_dict()))
    assert make_config(data) == cfg and isinstance(cfg, Config)
