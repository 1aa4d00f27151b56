"""The kinetic-model registry: everything dcequant knows about a model, in one entry.

A :class:`ModelSpec` holds a model's name, human name and BIDS ``desc`` label, its
fitted parameters (units, default bounds), the parameters derived from them (kep) with
the gradient their standard errors need, the identifiability rule, the recipe of the
grid start, the methods sentence and its citation keys (:mod:`bidsapp.registry.references`).
The fitting engine, the configuration and command line, the derivative names and
sidecars, the methods boilerplate, the report and the group tables all read it; adding
a model is one entry in :data:`MODELS` plus its term function (``docs/models.md``).

Every model is a sum of *terms* ``coef · B(t)``, where the basis ``B`` is the (delayed)
plasma curve itself (rate ``None``) or its exact convolution with ``exp(−rate·t)``
(rate 0: the running integral); see :meth:`bidsapp.models.PlasmaInput.basis`:

==================  ==================  ==============================================
model               parameters          C(t)
==================  ==================  ==============================================
``tofts``           Ktrans, ve          Ktrans · Cp ⊗ e^{−kep t},  kep = Ktrans/ve
``extended_tofts``  Ktrans, ve, vp      vp·Cp + Ktrans · Cp ⊗ e^{−kep t}
``patlak``          Ktrans, vp          vp·Cp + Ktrans · ∫Cp
``2cxm``            Fp, PS, ve, vp      Fp·[A·Cp ⊗ e^{−α t} + (1 − A)·Cp ⊗ e^{−β t}]
``2cum``            Fp, PS, vp          Fp·[E·∫Cp + (1 − E)·Cp ⊗ e^{−t/Tp}]
==================  ==================  ==============================================

2CXM: α, β are the roots of λ² − (Fp+PS)/vp·λ − PS/ve·λ + Fp·PS/(vp·ve) = 0
(α > β), A = (Fp/vp − β)/(α − β). 2CUM: E = PS/(Fp+PS), Tp = vp/(Fp+PS).

Units: Ktrans, PS, kep in 1/min; Fp in ml/100ml/min (tissue density taken as 1 ml/g,
i.e. Fp[1/s] = Fp/6000); ve, vp fractions; delay in s. Term coefficients are in 1/s
(fractions for the plasma term), rates in 1/s.

This module imports neither numpy nor torch (``dcequant --help`` reads the model names
from it). Term functions and coefficient maps take torch tensors and use tensor methods
only, so they run wherever the tensors live (CPU or CUDA).

References: Tofts PS et al. JMRI 1999;10:223-232 (Tofts, extended Tofts); Patlak CS et
al. J Cereb Blood Flow Metab 1983;3:1-7; Sourbron SP, Buckley DL. NMR Biomed
2013;26:1004-1027 (2CXM, 2CUM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .references import REFERENCES, cite

PER_MIN = 1.0 / 60.0  # 1/min -> 1/s
FP_UNIT = 1.0 / 6000.0  # ml/100ml/min -> 1/s

#: the bolus-arrival delay every model can fit (appended to its parameters)
DELAY_UNIT = "s"


@dataclass(frozen=True)
class Parameter:
    """A fitted parameter: ``name``, ``unit``, default ``bounds`` (lower, upper) and a description."""

    name: str
    unit: str
    bounds: tuple[float, float]
    description: str


@dataclass(frozen=True)
class DerivedParameter:
    """A parameter computed from fitted ones, with the gradient its standard error needs.

    ``value(p)`` and ``gradient(p)`` take a dict of arrays (numpy or torch) keyed by the
    names in ``inputs``; ``gradient`` returns ∂value/∂input in the order of ``inputs``.
    The standard error follows by the delta method, sqrt(gᵀ·cov·g); it is NaN where a
    parameter of ``stderr_requires`` has none (held on a bound).
    """

    name: str
    unit: str
    formula: str
    inputs: tuple[str, ...]
    value: Callable
    gradient: Callable
    description: str
    stderr_requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class GridStart:
    """Recipe of the grid start (:func:`bidsapp.fitting.start.grid_start`).

    ``bases`` names the basis of each term, in the order of the model's terms: ``"cp"``
    (plasma curve), ``"int"`` (running integral, rate 0) or ``"k1"``, ``"k2"`` (the
    convolution with the first or second grid rate). ``rates`` gives the grid of each
    ``k`` rate as ``(log10 lower, log10 upper, n)`` in 1/min (``None`` without rates);
    with two rates the grid holds the pairs k1 > k2. ``to_params(coef [n, m], rates
    [n, r])`` maps non-negative coefficients (1/s) and rates (1/s) back to parameters.
    """

    bases: tuple[str, ...]
    to_params: Callable
    rates: tuple[float, float, int] | None = None

    @property
    def n_rates(self):
        """Number of grid rates (``k1``, ``k2``) in the bases."""
        return sum(b.startswith("k") for b in self.bases)

    def rate_combos(self):
        """Grid rate combinations ``[C, r]`` in 1/s (numpy; ``[1, 0]`` without rates)."""
        import numpy as np

        if self.n_rates == 0:
            return np.zeros((1, 0))
        lo, hi, n = self.rates
        grid = np.logspace(lo, hi, n) * PER_MIN
        if self.n_rates == 1:
            return grid[:, None]
        k1, k2 = np.meshgrid(grid, grid, indexing="ij")
        keep = k1 > k2
        return np.stack([k1[keep], k2[keep]], axis=1)


@dataclass(frozen=True)
class ModelSpec:
    """Everything about one kinetic model (see the module docstring).

    ``terms(p)`` maps a dict of parameter tensors (model units) to the model's list of
    ``(coef, rate)`` tensors (1/s; rate ``None`` for the plasma term). ``identifiable_if``
    maps a parameter to the one whose exchange it describes (ve is only determined when
    Ktrans, or PS for 2CXM, is significantly above zero). ``linear_start`` marks the
    models with Murase's linearisation as a second start (the Tofts models).
    ``nested_bound`` marks the models of the form ``[vp·Cp +] Ktrans·Cp ⊗ e^{−(Ktrans/ve) t}``,
    for which :mod:`bidsapp.fitting.nested_bound` bounds the delay-0 SSE from below (the
    Tofts models).
    """

    name: str
    human: str
    label: str
    parameters: tuple[Parameter, ...]
    terms: Callable
    grid: GridStart
    citations: tuple[str, ...]
    derived: tuple[DerivedParameter, ...] = ()
    identifiable_if: dict = field(default_factory=dict)
    linear_start: bool = False
    nested_bound: bool = False

    @property
    def params(self):
        """Names of the fitted parameters, in fitting order."""
        return tuple(p.name for p in self.parameters)

    @property
    def bounds(self):
        """Default box constraints ``{name: (lower, upper)}`` of the fitted parameters."""
        return {p.name: p.bounds for p in self.parameters}

    @property
    def units(self):
        """Units of every map the model writes: fitted, derived parameters and the delay."""
        return {**{p.name: p.unit for p in (*self.parameters, *self.derived)}, "delay": DELAY_UNIT}

    @property
    def outputs(self):
        """Names of every parameter map the model can write (fitted, derived, delay)."""
        return (*self.params, *(d.name for d in self.derived), "delay")

    @property
    def citation(self):
        """Short citation for running text (``Tofts et al. 1999``)."""
        return cite(self.citations)

    @property
    def description(self):
        """One line: ``Extended Tofts model (Tofts et al. 1999)``."""
        return f"{self.human[0].upper()}{self.human[1:]} ({self.citation})"

    @property
    def methods(self):
        """Methods-text phrase: ``the extended Tofts model (Ktrans, ve, vp; kep = Ktrans/ve)``."""
        derived = "".join(f"; {d.name} = {d.formula}" for d in self.derived)
        return f"the {self.human} ({', '.join(self.params)}{derived})"

    def parameter_description(self, name):
        """Sidecar description of map ``name``: ``Ktrans of the extended Tofts model (Tofts et al. 1999)``."""
        return f"{name} of the {self.human} ({self.citation})"


# ----------------------------------------------------------------------------- terms
def _tofts_terms(p):
    ktrans = p["Ktrans"] * PER_MIN
    return [(ktrans, ktrans / p["ve"])]


def _extended_tofts_terms(p):
    return [(p["vp"], None), *_tofts_terms(p)]


def _patlak_terms(p):
    return [(p["vp"], None), (p["Ktrans"] * PER_MIN, p["Ktrans"].new_zeros(p["Ktrans"].shape))]


def _two_cxm_terms(p):
    fp, ps, ve, vp = p["Fp"] * FP_UNIT, p["PS"] * PER_MIN, p["ve"], p["vp"]
    s = (fp + ps) / vp + ps / ve
    prod = fp * ps / (vp * ve)
    root = (s * s - 4.0 * prod).clamp(min=0.0).sqrt()
    alpha = 0.5 * (s + root)
    beta = 0.5 * (s - root)
    # A·(α−β) = Fp/vp − β; written without the division so α = β stays finite
    a_coef = fp * (fp / vp - beta) / root.clamp(min=1e-300)
    return [(a_coef, alpha), (fp - a_coef, beta)]


def _two_cum_terms(p):
    fp, ps, vp = p["Fp"] * FP_UNIT, p["PS"] * PER_MIN, p["vp"]
    total = fp + ps
    return [(fp * ps / total, fp.new_zeros(fp.shape)), (fp * fp / total, total / vp)]


# ------------------------------------------------- grid start: coefficients -> parameters
def _tofts_params(coef, rates):
    c0 = coef[:, 0]
    return {"Ktrans": c0 / PER_MIN, "ve": c0 / rates[:, 0]}


def _extended_tofts_params(coef, rates):
    return {"Ktrans": coef[:, 1] / PER_MIN, "ve": coef[:, 1] / rates[:, 0], "vp": coef[:, 0]}


def _patlak_params(coef, rates):
    return {"Ktrans": coef[:, 1] / PER_MIN, "vp": coef[:, 0]}


def _two_cum_params(coef, rates):
    a, b = coef[:, 0], coef[:, 1]
    fp = a + b
    ps = a * fp / b.clamp_min(1e-300)
    return {"Fp": fp / FP_UNIT, "PS": ps / PER_MIN, "vp": (fp + ps) / rates[:, 0]}


def _two_cxm_params(coef, rates):
    # C = c1·e^{−αt}⊗Cp + c2·e^{−βt}⊗Cp, Fp = c1 + c2, A = c1/Fp
    c0 = coef[:, 0]
    alpha, beta = rates[:, 0], rates[:, 1]
    fp = (c0 + coef[:, 1]).clamp_min(1e-300)
    a = c0 / fp
    vp = fp / (beta + a * (alpha - beta)).clamp_min(1e-300)
    ssum, prod = alpha + beta, alpha * beta
    ps = vp * ssum - prod * vp * vp / fp - fp
    ve = ps * fp / (prod * vp).clamp_min(1e-300)
    return {"Fp": fp / FP_UNIT, "PS": ps / PER_MIN, "ve": ve, "vp": vp}


# ------------------------------------------------------------------ shared definitions
KTRANS = Parameter("Ktrans", "1/min", (0.0, 5.0), "volume transfer constant")
VE = Parameter("ve", "fraction", (1e-3, 1.0), "extravascular extracellular volume fraction")
VP = Parameter("vp", "fraction", (0.0, 1.0), "plasma volume fraction")
FP = Parameter("Fp", "ml/100ml/min", (1e-3, 300.0), "plasma flow")
PS = Parameter("PS", "1/min", (0.0, 5.0), "permeability-surface area product")

KEP = DerivedParameter(
    "kep",
    "1/min",
    "Ktrans/ve",
    ("Ktrans", "ve"),
    value=lambda p: p["Ktrans"] / p["ve"],
    gradient=lambda p: (1.0 / p["ve"], -p["Ktrans"] / p["ve"] ** 2),
    description="efflux rate constant",
    stderr_requires=("ve",),
)

#: rate grid (log10 1/min) of the Tofts models: wide enough for brain, tumour and body tissue
_TOFTS_RATES = (-3.0, 1.4771212547196624, 28)  # 1e-3 .. 30 /min

MODELS = {
    "tofts": ModelSpec(
        "tofts",
        "standard Tofts model",
        "tofts",
        (KTRANS, VE),
        _tofts_terms,
        GridStart(("k1",), _tofts_params, _TOFTS_RATES),
        ("tofts1999",),
        derived=(KEP,),
        identifiable_if={"ve": "Ktrans", "kep": "Ktrans"},
        linear_start=True,
        nested_bound=True,
    ),
    "extended_tofts": ModelSpec(
        "extended_tofts",
        "extended Tofts model",
        "extendedtofts",
        (KTRANS, VE, VP),
        _extended_tofts_terms,
        GridStart(("cp", "k1"), _extended_tofts_params, _TOFTS_RATES),
        ("tofts1999",),
        derived=(KEP,),
        identifiable_if={"ve": "Ktrans", "kep": "Ktrans"},
        linear_start=True,
        nested_bound=True,
    ),
    "patlak": ModelSpec(
        "patlak",
        "Patlak model",
        "patlak",
        (Parameter("Ktrans", "1/min", (-1.0, 5.0), "volume transfer constant (unidirectional)"), VP),
        _patlak_terms,
        GridStart(("cp", "int"), _patlak_params),
        ("patlak1983",),
    ),
    "2cxm": ModelSpec(
        "2cxm",
        "two-compartment exchange model",
        "2cxm",
        (FP, PS, VE, Parameter("vp", "fraction", (1e-3, 1.0), VP.description)),
        _two_cxm_terms,
        GridStart(("k1", "k2"), _two_cxm_params, (-3.0, 3.0, 20)),
        ("sourbron2013",),
        identifiable_if={"ve": "PS"},
    ),
    "2cum": ModelSpec(
        "2cum",
        "two-compartment uptake model",
        "2cum",
        (FP, PS, Parameter("vp", "fraction", (1e-3, 1.0), VP.description)),
        _two_cum_terms,
        GridStart(("int", "k1"), _two_cum_params, (-2.0, 3.0, 28)),
        ("sourbron2013",),
    ),
}

#: names of the registered models, in registry order (config and ``--models`` choices)
MODEL_NAMES = tuple(MODELS)


def get_model(model: ModelSpec | str) -> ModelSpec:
    """Return the :class:`ModelSpec` of ``model``.

    ``model`` is a spec, a name (``extended_tofts``, ``extended-tofts``) or a BIDS label
    (``extendedtofts``).
    """
    if isinstance(model, ModelSpec):
        return model
    key = str(model).lower().replace("-", "_")
    spec = MODELS.get(key) or next((s for s in MODELS.values() if s.label == key), None)
    if spec is None:
        raise ValueError(f"model: unknown model {model!r}; choose one of {', '.join(MODELS)}")
    return spec


def check_spec(spec):
    """Raise ``ValueError`` naming the field when a :class:`ModelSpec` is incomplete or inconsistent.

    These are the static checks; ``tests/unit/test_registry.py`` also checks its terms
    against its grid start.
    """
    names = spec.params
    if not spec.name or not spec.human or not spec.label or "_" in spec.label or "-" in spec.label:
        raise ValueError(f"{spec.name}: name, human and label (no '_' or '-') are required")
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"{spec.name}: parameters must be distinct and at least one")
    for p in spec.parameters:
        if not p.unit or not p.description or not p.bounds[0] < p.bounds[1]:
            raise ValueError(f"{spec.name}: parameter {p.name} needs a unit, a description and lower < upper")
    for d in spec.derived:
        if not set(d.inputs) <= set(names) or not set(d.stderr_requires) <= set(d.inputs) or not d.unit:
            raise ValueError(
                f"{spec.name}: derived {d.name} must depend on fitted parameters and have a unit"
            )
    for target, driver in spec.identifiable_if.items():
        if target not in spec.outputs or driver not in names:
            raise ValueError(
                f"{spec.name}: identifiable_if {target!r} -> {driver!r} names unknown parameters"
            )
    unknown = [key for key in spec.citations if key not in REFERENCES]
    if not spec.citations or unknown:
        raise ValueError(f"{spec.name}: citations {unknown or '()'} not in the bibliography")
    grid = spec.grid
    if not set(grid.bases) <= {"cp", "int", "k1", "k2"} or (grid.rates is None) != (grid.n_rates == 0):
        raise ValueError(f"{spec.name}: grid bases {grid.bases} do not match its rate grid {grid.rates}")
    return spec
