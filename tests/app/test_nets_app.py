"""The kinetic networks in the participant workflow: options, the session step, outputs, report."""

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.parser import build_parser
from bidsapp.cli.run import main, parse_config, validate_bids
from bidsapp.nets.weights import read_card, shipped_networks
from bidsapp.nets_step import nets_step

#: 61 frames every 5 s = 300 s, the shortest series the networks accept
LONG = {"matrix": (8, 8, 2), "protocol": {"n_frames": 61}}
DESCRIPTOR = Path(__file__).resolve().parents[2] / "dcequant.json"


def test_nets_option_defaults_to_every_shipped_kinetic_network(tmp_path):
    assert shipped_networks() == ["cnn", "punet"]  # the cards' names; dose is no kinetic network
    base = [str(tmp_path), str(tmp_path / "out"), "participant"]
    assert parse_config(base).networks() == ["cnn", "punet"]
    assert parse_config([*base, "--nets"]).networks() == []
    assert parse_config([*base, "--nets", "punet", "punet"]).networks() == ["punet"]
    with pytest.raises(ValueError, match="--nets: unknown network"):
        parse_config([*base, "--nets", "cnn", "unet"])
    choices = next(i for i in json.loads(DESCRIPTOR.read_text())["inputs"] if i["id"] == "nets")
    assert choices["value-choices"] == shipped_networks()
    assert "cnn, punet" in next(a.help for a in build_parser()._actions if a.dest == "nets")


def test_a_series_shorter_than_300_s_is_refused_without_failing(simulated_study, tmp_path, monkeypatch):
    """The default tiny protocol (40 frames × 5 s = 195 s): a warning, no maps, an empty manifest."""
    out = tmp_path / "out"
    assert main([str(simulated_study()), str(out), "participant", "--models", "tofts", "--aif", "parker",
                 "-w", str(tmp_path / "work"), "--skip-bids-validation"]) == 0  # fmt: skip
    perf = out / "sub-01" / "ses-01" / "perf"
    if not perf.is_dir():
        perf = out / "sub-01" / "perf"
    assert list(perf.glob("*_desc-tofts_Ktrans.nii.gz")) and not list(perf.glob("*_desc-cnn_*"))
    assert not list(perf.glob("*_desc-punet*"))
    monkeypatch.chdir(tmp_path)
    conc = next(perf.glob("*_desc-conc_dce.nii.gz"))
    mask = next(perf.glob("*_desc-tofts_mask.nii.gz"))
    aif = next(perf.glob("*_desc-aif_timeseries.tsv"))
    acquisition = tmp_path / "acquisition.json"
    acquisition.write_text(conc.with_name(conc.name.replace(".nii.gz", ".json")).read_text())
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("dcequant").addHandler(handler)
    try:
        result = nets_step(["punet"], conc, mask, acquisition, aif, aif.with_suffix(".json"), "cpu")
    finally:
        logging.getLogger("dcequant").removeHandler(handler)
    assert "duration 195 s is outside the training envelope" in result["refused"]
    assert json.loads(Path(result["manifest"]).read_text()) == []
    assert any("networks not run" in record.getMessage() for record in records)


def test_long_series_gets_network_maps_with_provenance_and_report(simulated_study, tmp_path):
    study = simulated_study(**LONG)
    out = tmp_path / "out"
    code = main([str(study), str(out), "participant", "--models", "extended_tofts", "--aif", "parker",
                 "-w", str(tmp_path / "work"), "--skip-bids-validation"])  # fmt: skip
    assert code == 0
    perf = out / "sub-01" / "perf"
    if not perf.is_dir():
        perf = out / "sub-01" / "ses-01" / "perf"
    prefix = next(perf.glob("*_desc-conc_dce.nii.gz")).name.split("_desc-")[0]
    fitted_mask = nib.load(next(perf.glob("*_desc-conc_dce.nii.gz"))).get_fdata()[..., 0]
    for net, labels in (("cnn", ["cnn"]), ("punet", ["punet", "punetStd"])):
        card = read_card(net)
        for label in labels:
            for name, units in (("Ktrans", "1/min"), ("vp", "fraction"), ("ve", "fraction")):
                path = perf / f"{prefix}_desc-{label}_{name}.nii.gz"
                sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
                assert sidecar["Network"] == net and sidecar["Units"] == units
                assert sidecar["NetworkWeightsSHA256"] == card["sha256"]
                assert sidecar["InputContract"]["envelope"]["duration"][0] == 300.0
                assert sidecar["EnvelopeWarnings"] == [] and sidecar["T1Method"] == "vfa-linear"
                assert sidecar["AIF"]["File"].endswith("_desc-aif_timeseries.tsv")
                values = nib.load(path).get_fdata()
                inside = np.isfinite(fitted_mask) & (fitted_mask != 0)
                if name != "ve":
                    assert np.isfinite(values[inside]).mean() > 0.5
                else:  # ve is NaN where the network's Ktrans < 0.01 /min (never 0), finite elsewhere
                    ktrans = nib.load(perf / f"{prefix}_desc-{net}_Ktrans.nii.gz").get_fdata()
                    estimated = inside & (ktrans >= 0.01)
                    assert np.isnan(values[inside & ~estimated]).all()
                    assert np.isfinite(values[estimated]).all()
                if label == "punetStd":
                    assert (values[np.isfinite(values)] >= 0).all()
    assert not list(perf.glob("*_desc-cnnStd_*"))  # the CNN has no SD
    ktrans = nib.load(perf / f"{prefix}_desc-punet_Ktrans.nii.gz").get_fdata()
    assert 0 <= np.nanmedian(ktrans) < 1.0  # 1/min, a tissue value
    report = (out / "sub-01.html").read_text()
    assert "<h3>Network: cnn</h3>" in report and "<h3>Network: punet</h3>" in report
    assert "SD over the prior draws" in report and 'alt="punet maps"' in report
    citation = (out / "logs" / "CITATION.md").read_text()
    assert "Ulas et al." in citation and "Lyoo" in citation
    validate_bids(out)  # the derivative dataset, network maps included, is valid BIDS
