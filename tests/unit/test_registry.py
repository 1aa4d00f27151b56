"""The model and population-AIF registries: every entry complete and self-consistent."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from bidsapp.aif import population
from bidsapp.derivatives import BIDSIGNORE
from bidsapp.fitting.start import _bases
from bidsapp.models import PlasmaInput, evaluate
from bidsapp.registry import MODELS, POPULATION_AIF_SPECS, REFERENCES, get_model
from bidsapp.registry.aifs import check_population_aif
from bidsapp.registry.kinetic import check_spec

#: the units of the house rules (docs/index.md)
HOUSE_UNITS = {"1/min", "ml/100ml/min", "fraction", "s"}


def _plasma(fine=False):
    t = torch.arange(0.0, 240.0, 3.0, dtype=torch.float64)
    grid = torch.arange(0.0, 237.5, 0.5, dtype=torch.float64) if fine else t
    aif = torch.as_tensor(population.population_aif("parker", grid.numpy(), bolus_arrival=15.0))
    return PlasmaInput(t, aif, grid if fine else None)


def _random_params(spec, n, seed=0):
    """Parameters inside the default bounds, away from them (torch, model units)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for p in spec.parameters:
        lo, hi = p.bounds
        lo, hi = max(lo, 0.02 * hi), 0.5 * hi
        out[p.name] = lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)
    if "ve" in out and "vp" in out:  # keep ve + vp ≤ 1
        out["ve"] = out["ve"].clamp(max=0.6)
        out["vp"] = out["vp"].clamp(max=0.3)
    return out


def _coefficients(spec, p):
    """Coefficients ``[n, m]`` and grid rates ``[n, r]`` of the model's terms, checked against its bases."""
    terms = spec.terms(p)
    assert len(terms) == len(spec.grid.bases)
    coefs, rates = [], []
    for (coef, rate), basis in zip(terms, spec.grid.bases, strict=True):
        if basis == "cp":
            assert rate is None
        elif basis == "int":
            assert rate is not None and bool((rate == 0).all())
        else:
            assert rate is not None and bool((rate > 0).all())
            rates.append(rate)
        coefs.append(coef)
    n = coefs[0].shape[0]
    return torch.stack(coefs, dim=1), (
        torch.stack(rates, dim=1) if rates else torch.zeros(n, 0, dtype=torch.float64)
    )


@pytest.mark.parametrize("name", list(MODELS))
def test_entry_complete(name):
    spec = check_spec(MODELS[name])
    assert get_model(name) is spec and get_model(spec.label) is spec
    assert spec.label.isalnum()
    assert set(spec.units.values()) <= HOUSE_UNITS
    assert all(key in REFERENCES for key in spec.citations)
    assert spec.citation in spec.description and spec.citation in spec.parameter_description(spec.params[0])
    assert spec.methods.startswith(f"the {spec.human} (")
    for out in spec.outputs:  # every map the model writes is ignored by the BIDS validator
        assert f"*_{out}.*" in BIDSIGNORE
    if spec.grid.rates is not None:
        combos = spec.grid.rate_combos()
        assert combos.shape[1] == spec.grid.n_rates and (combos > 0).all()
        if spec.grid.n_rates == 2:
            assert (combos[:, 0] > combos[:, 1]).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_parameters_coefficients_round_trip(name):
    """parameters -> term coefficients and rates -> parameters (the grid start's map) is the identity."""
    spec = MODELS[name]
    p = _random_params(spec, 64)
    coef, rates = _coefficients(spec, p)
    back = spec.grid.to_params(coef, rates)
    assert set(back) == set(spec.params)
    for key in spec.params:
        np.testing.assert_allclose(back[key].numpy(), p[key].numpy(), rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("fine", [False, True])
@pytest.mark.parametrize("delay", [None, 4.3])
@pytest.mark.parametrize("name", list(MODELS))
def test_bases_rebuild_terms(name, delay, fine):
    """The grid start's bases, weighted by the term coefficients, are the model curve."""
    spec, plasma = MODELS[name], _plasma(fine)
    p = _random_params(spec, 5, seed=1)
    coef, rates = _coefficients(spec, p)
    shift = None if delay is None else torch.full((5,), delay, dtype=torch.float64)
    expected = evaluate(spec, p, plasma, shift)  # [5, T]
    delays = None if delay is None else torch.tensor([delay], dtype=torch.float64)
    for i in range(5):
        bases = _bases(spec, plasma, delays, rates[i : i + 1])[0, 0]  # [m, T]
        np.testing.assert_allclose((coef[i] @ bases).numpy(), expected[i].numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", [n for n, s in MODELS.items() if s.derived])
def test_derived_gradient(name):
    """The registry gradient of each derived parameter matches central differences."""
    spec = MODELS[name]
    p = {k: v.numpy() for k, v in _random_params(spec, 16, seed=2).items()}
    for d in spec.derived:
        grad = d.gradient(p)
        for i, key in enumerate(d.inputs):
            h = 1e-6 * np.abs(p[key])
            up, down = dict(p), dict(p)
            up[key], down[key] = p[key] + h, p[key] - h
            numeric = (d.value(up) - d.value(down)) / (2 * h)
            np.testing.assert_allclose(grad[i], numeric, rtol=1e-6)


@pytest.mark.parametrize("name", list(POPULATION_AIF_SPECS))
def test_population_aif_entry(name):
    check_population_aif(POPULATION_AIF_SPECS[name])
    assert name in population._CURVES
    values = population.population_aif(name, np.arange(0.0, 300.0, 1.0), hematocrit=0.0)
    assert np.all(np.isfinite(values)) and values.max() > 0


def test_every_population_curve_registered():
    assert set(population._CURVES) == set(POPULATION_AIF_SPECS)


def test_command_line_imports_no_science_stack():
    """``dcequant --help`` reads the registry without loading torch (or numpy)."""
    code = (
        "import sys, bidsapp.cli.parser as p; p.build_parser().format_help(); "
        "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _documented_example():
    """The model entry of docs/models.md ("Adding a kinetic model"), executed as written."""
    from pathlib import Path

    from bidsapp.registry import kinetic

    text = (Path(__file__).parents[2] / "docs" / "models.md").read_text()
    section = text.split("## Adding a kinetic model", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = dict(vars(kinetic), MODELS={})
    exec(code, namespace)  # noqa: S102 - the documented entry itself
    (spec,) = namespace["MODELS"].values()
    return spec


def test_documented_example_model(monkeypatch):
    """The worked example is one entry plus its term function: it passes the registry checks and fits."""
    from bidsapp import fit_model, model_curve

    spec = check_spec(_documented_example())
    monkeypatch.setitem(MODELS, spec.name, spec)
    p = _random_params(spec, 32, seed=3)
    coef, rates = _coefficients(spec, p)
    back = spec.grid.to_params(coef, rates)
    for key in spec.params:
        np.testing.assert_allclose(back[key].numpy(), p[key].numpy(), rtol=1e-9)
    t = np.arange(0.0, 300.0, 3.0)
    aif = population.population_aif("parker", t, bolus_arrival=15.0)
    truth = {"Fp": np.array([20.0, 60.0, 120.0]), "v": np.array([0.2, 0.5, 0.1])}
    fit = fit_model(spec.name, model_curve(spec.name, truth, t, aif), t, aif, device="cpu")
    for key, value in truth.items():
        np.testing.assert_allclose(fit.params[key], value, rtol=1e-4)
    assert fit.valid.all()


def test_methods_cite_every_key_of_an_entry():
    """A population AIF with two papers is cited as [n, m] and both appear in the reference list."""
    from nipype.pipeline import engine as pe

    from bidsapp.boilerplate import methods_markdown

    spec = POPULATION_AIF_SPECS["weinmann"]
    wf = pe.Workflow(name="methods_test")
    wf.__desc__ = (
        f"The AIF was the {spec.human} [{'; '.join('@' + k for k in spec.citations)}]; [@unknown] stays."
    )
    wf.__refs__ = list(spec.citations)
    text = methods_markdown(wf)
    assert "the Weinmann population AIF [1, 2]; [@unknown] stays." in text
    for number, key in enumerate(spec.citations, start=1):
        assert f"{number}. {REFERENCES[key].text}" in text


def test_one_result_type():
    """fit_model, patlak_linear and the package namespace share bidsapp.results.FitResult."""
    import bidsapp
    from bidsapp import fitting, results

    assert bidsapp.FitResult is fitting.FitResult is results.FitResult
    t = np.arange(0.0, 120.0, 4.0)
    aif = population.population_aif("parker", t, bolus_arrival=10.0)
    curves = np.stack([aif * 0.05, aif * 0.1])
    linear = fitting.patlak_linear(curves, t, aif)
    fitted = fitting.fit_model("patlak", curves, t, aif, device="cpu")
    assert isinstance(linear, results.FitResult) and isinstance(fitted, results.FitResult)
    assert (linear.method, fitted.method) == (results.METHOD_LINEAR, results.METHOD_NLLS)
