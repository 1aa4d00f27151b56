"""The Boutiques descriptor ``dcequant.json``: valid (also as a BIDS App descriptor), in step with
the argument parser, and the command lines it generates are what ``dcequant`` parses."""

import argparse
import json
import shlex
from pathlib import Path

import pytest

from bidsapp import __version__
from bidsapp.cli.parser import build_parser
from bidsapp.cli.run import parse_config
from bidsapp.config import AIFChoice

boutiques = pytest.importorskip("boutiques", reason="boutiques is not installed (pip install boutiques)")
DESCRIPTOR = Path(__file__).resolve().parents[2] / "dcequant.json"


def _descriptor():
    return json.loads(DESCRIPTOR.read_text())


def test_descriptor_is_a_valid_bids_app_descriptor():
    boutiques.bosh(["validate", "--bids", str(DESCRIPTOR)])  # raises DescriptorValidationError
    desc = _descriptor()
    assert desc["tool-version"] == __version__
    assert desc["container-image"]["image"].endswith(f":{__version__}")


def test_descriptor_lists_every_option_of_the_parser():
    flags = {i["command-line-flag"] for i in _descriptor()["inputs"] if "command-line-flag" in i}
    options = {}
    for action in build_parser()._actions:
        if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            options[action.dest] = set(action.option_strings)
    missing = sorted(dest for dest, strings in options.items() if not strings & flags)
    assert not missing, f"options missing from dcequant.json: {missing}"
    unknown = sorted(flags - set().union(*options.values()))
    assert not unknown, f"dcequant.json has flags dcequant does not know: {unknown}"


def test_generated_command_is_what_dcequant_parses(tmp_path):
    invocation = {
        "bids_dir": "/data/bids",
        "output_dir_name": "/data/out",
        "analysis_level": "participant",
        "participant_label": ["01", "02"],
        "models": ["patlak", "tofts"],
        "no_b1_correction": True,
        "nprocs": 2,
        "hematocrit": 0.42,
        "aif": "parker",
        "fit_delay": True,
    }
    path = tmp_path / "invocation.json"
    path.write_text(json.dumps(invocation))
    out = boutiques.bosh(["exec", "simulate", str(DESCRIPTOR), "-i", str(path)])
    mkdir, command = out.shell_command.split("; ", 1)
    assert mkdir == "mkdir -p /data/out"
    argv = shlex.split(command)
    assert argv[0] == "dcequant"
    config = parse_config(argv[1:])
    assert (str(config.bids_dir), str(config.output_dir), config.analysis_level) == (
        "/data/bids",
        "/data/out",
        "participant",
    )
    assert config.participant_label == ["01", "02"] and config.models == ["patlak", "tofts"]
    assert config.b1_correction is False and config.fit_delay is True
    assert (
        config.nprocs == 2 and config.hematocrit == 0.42 and config.aif == AIFChoice("population", "parker")
    )
