"""OSIPI Code Collection DCE model cases (Tofts, extended Tofts, Patlak, 2CXM, 2CUM),
with and without the 5 s delay, at OSIPI's tolerances (tests/data/osipi/README.md).

Each file's cases are fitted in one batched call of :func:`bidsapp.fit_model` with the
engine's default bounds and starting values, then checked case by case with
``|measured − reference| ≤ a_tol + r_tol·|reference|``.
"""

from functools import cache

import numpy as np
import pytest
from osipi_data import array_cell, read_csv

import bidsapp

TOL = {  # (a_tol, r_tol), identical in every OSIPI DCE model file
    "Ktrans": (0.005, 0.1),
    "PS": (0.005, 0.1),
    "ve": (0.05, 0.0),
    "vp": (0.025, 0.0),
    "Fp": (5.0, 0.1),
    "delay": (1.0, 0.0),
}
# file, model, {reference column: parameter}, time column, tissue column, aif column, loader-made shift
CASES = {
    "tofts": (
        "DCEmodels/dce_DRO_data_tofts.csv",
        "tofts",
        {"Ktrans": "Ktrans", "ve": "ve"},
        "t",
        "C",
        "ca",
        10,
    ),
    "extended_tofts": (
        "DCEmodels/dce_DRO_data_extended_tofts.csv",
        "extended_tofts",
        {"Ktrans": "Ktrans", "ve": "ve", "vp": "vp"},
        "t",
        "C",
        "ca",
        5,
    ),
    "patlak": (
        "DCEmodels/patlak_sd_0.02_delay_{d}.csv",
        "patlak",
        {"ps": "Ktrans", "vp": "vp"},
        "t",
        "C_t",
        "cp_aif",
        None,
    ),
    "2cxm": (
        "DCEmodels/2cxm_sd_0.001_delay_{d}.csv",
        "2cxm",
        {"fp": "Fp", "ps": "PS", "ve": "ve", "vp": "vp"},
        "t",
        "C_t",
        "cp_aif",
        None,
    ),
    "2cum": (
        "DCEmodels/2cum_sd_0.0025_delay_{d}.csv",
        "2cum",
        {"fp": "Fp", "ps": "PS", "vp": "vp"},
        "t",
        "C_t",
        "cp_aif",
        None,
    ),
}


@cache
def load(name, delayed):
    """Rows of one test file as (labels, t, C [N, T], aif [N, T], reference dicts)."""
    path, _, columns, tcol, ccol, acol, shift = CASES[name]
    df = read_csv(path.format(d=5 if delayed else 0))
    labels, curves, aifs, refs = [], [], [], []
    t = array_cell(df[tcol].iloc[0])
    for _, row in df.iterrows():
        c = array_cell(row[ccol])
        ref = {param: float(row[col]) for col, param in columns.items()}
        if delayed and shift:  # OSIPI's loader builds the delayed Tofts variants itself
            c = np.concatenate([np.zeros(shift), c[:-shift]])
            ref["delay"] = t[shift]
        elif delayed:
            ref["delay"] = float(row["arterial_delay"])
        labels.append(row["label"] + ("_delayed" if delayed and shift else ""))
        curves.append(c)
        aifs.append(array_cell(row[acol]))
        refs.append(ref)
    return labels, t, np.array(curves), np.array(aifs), refs


@cache
def fitted(name, delayed):
    """Fit every case of a file: one batched call per distinct AIF. Returns per-case params."""
    labels, t, curves, aifs, refs = load(name, delayed)
    model = CASES[name][1]
    params = [None] * len(labels)
    groups = {}
    for i, aif in enumerate(aifs):
        groups.setdefault(aif.tobytes(), []).append(i)
    for members in groups.values():
        res = bidsapp.fit_model(model, curves[members], t, aifs[members[0]], fit_delay=delayed, device="cpu")
        for j, i in enumerate(members):
            params[i] = ({k: v[j] for k, v in res.params.items()}, bool(res.converged[j]))
    return params


def case_ids():
    out = []
    for name in CASES:
        for delayed in (False, True):
            out += [
                pytest.param(name, delayed, i, id=f"{name}-{label}")
                for i, label in enumerate(load(name, delayed)[0])
            ]
    return out


@pytest.mark.parametrize("name,delayed,index", case_ids())
def test_osipi_dce_model_case(name, delayed, index):
    params, converged = fitted(name, delayed)[index]
    reference = load(name, delayed)[4][index]
    for param, ref in reference.items():
        a_tol, r_tol = TOL[param]
        measured = params[param]
        assert abs(measured - ref) <= a_tol + r_tol * abs(ref), (
            f"{param}: measured {measured:.5g}, reference {ref:.5g}, allowed {a_tol + r_tol * abs(ref):.3g}"
        )
    assert converged
