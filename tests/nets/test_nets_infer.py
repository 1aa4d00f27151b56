"""infer_parameters with the shipped weights on a held-out simulated slice."""

import shutil

import numpy as np
import pytest

from bidsapp import FitResult, infer_parameters
from bidsapp.nets.contract import EnvelopeError
from bidsapp.nets.infer import VE_MIN_KTRANS
from bidsapp.nets.training import data
from bidsapp.nets.weights import WeightsError, default_directory


@pytest.fixture(scope="module")
def case():
    """A benchmark-stream slice (never seen in training) at SNR 20 with its true AIF."""
    clean = data.clean_slice(0, data.BENCHMARK, 0)
    conc = data.noisy_concentration(clean, np.random.default_rng(0), 20.0)
    p = clean.protocol
    acquisition = {
        "flip_angle": p.dce_flip_angle,
        "repetition_time": p.dce_tr,
        "field_strength": p.field_strength,
        "baseline_length": p.nominal_arrival,
    }
    return clean, conc, acquisition


@pytest.mark.parametrize("net", ["cnn", "punet"])
def test_shipped_network_predicts_a_simulated_slice(case, net):
    clean, conc, acquisition = case
    result = infer_parameters(conc, clean.t, clean.aif, mask=clean.head, net=net, acquisition=acquisition)
    assert isinstance(result, FitResult) and result.model == "extended_tofts" and result.network == net
    assert result.envelope_warnings == [] and len(result.sha256) == 64
    ktrans, vp = result.params["Ktrans"], result.params["vp"]
    assert np.isfinite(ktrans[clean.head]).all() and np.isnan(ktrans[~clean.head]).all()
    assert (ktrans[clean.head] >= 0).all() and (vp[clean.head] >= 0).all()
    assert np.isnan(result.params["ve"][clean.head & (ktrans < VE_MIN_KTRANS)]).all()
    tissue = clean.head & (clean.truth[2] < 0.3)  # not vessels
    sd = result.stderr["Ktrans"][clean.head]
    if net == "punet":
        assert (sd > 0).all() and np.isfinite(
            result.coefficient_of_variation("Ktrans")[tissue & (ktrans > 0)]
        ).all()
    else:
        assert np.isnan(sd).all()


@pytest.mark.parametrize("net", ["cnn", "punet"])
def test_shipped_network_error_is_sane(case, net):
    clean, conc, acquisition = case
    result = infer_parameters(conc, clean.t, clean.aif, mask=clean.head, net=net, acquisition=acquisition)
    tissue = clean.head & (clean.truth[2] < 0.3)  # not vessels
    # sanity bounds, a fifth of Ktrans's and half of vp's typical magnitude (0.1 /min, 0.05); an
    # untrained network (near-constant output, Ktrans ~0.07 /min) misses the Ktrans bound ~3-fold
    for i, name, bound in ((0, "Ktrans", 0.02), (2, "vp", 0.025)):
        truth = clean.truth[i][tissue]
        rmse = np.sqrt(np.mean((result.params[name][tissue] - truth) ** 2))
        assert rmse < bound, (name, rmse)


def test_guard_warns_and_refuses(case):
    clean, conc, acquisition = case
    with pytest.warns(UserWarning, match="flip_angle 60 deg is outside the training envelope"):
        result = infer_parameters(
            conc, clean.t, clean.aif, net="cnn", acquisition={**acquisition, "flip_angle": 60.0}
        )
    assert result.envelope_warnings and result.envelope_warnings[0].startswith("flip_angle")
    short = clean.t <= 200.0
    with pytest.raises(EnvelopeError, match="duration"):
        infer_parameters(conc[..., short], clean.t[short], clean.aif[short], net="cnn")


def test_corrupted_weights_are_refused(tmp_path):
    for suffix in (".pt", ".json"):
        shutil.copy(default_directory() / f"cnn{suffix}", tmp_path / f"cnn{suffix}")
    payload = bytearray((tmp_path / "cnn.pt").read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # flip one byte
    (tmp_path / "cnn.pt").write_bytes(bytes(payload))
    n = 61
    with pytest.raises(WeightsError, match="cnn.pt: sha256"):
        infer_parameters(np.zeros((4, 4, n)), np.arange(n) * 5.0, np.ones(n), net="cnn", weights_dir=tmp_path)
