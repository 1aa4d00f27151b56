"""The population-AIF registry: name, medium, formula and citations of each published curve.

The curves themselves are evaluated by :func:`bidsapp.aif.population.population_aif`
(one function per entry, keyed by :attr:`PopulationAIF.name`); this module holds what
the configuration, the methods text and the sidecars say about them, and imports
neither numpy nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .references import REFERENCES, cite


@dataclass(frozen=True)
class PopulationAIF:
    """One published population arterial input function.

    ``medium`` is ``"blood"`` or ``"plasma"`` (blood curves are converted to plasma with
    the haematocrit); ``time_unit`` the unit (s) of the paper's time axis; ``formula``
    the functional form in words; ``citations`` keys of the bibliography.
    """

    name: str
    human: str
    medium: str
    time_unit: float
    formula: str
    citations: tuple[str, ...]

    @property
    def citation(self):
        """Short citation for running text (``Parker et al. 2006``)."""
        return cite(self.citations)


POPULATION_AIF_SPECS = {
    "parker": PopulationAIF(
        "parker",
        "Parker population AIF",
        "blood",
        60.0,
        "two Gaussians plus an exponential modulated by a sigmoid (Eq. 1, Table 1)",
        ("parker2006",),
    ),
    "georgiou": PopulationAIF(
        "georgiou",
        "Georgiou population AIF",
        "blood",
        60.0,
        "a tri-exponential wash-out times a train of gamma-variate passes (Eq. 1, Table 3)",
        ("georgiou2019",),
    ),
    "weinmann": PopulationAIF(
        "weinmann",
        "Weinmann population AIF",
        "plasma",
        60.0,
        "a bi-exponential, dose·Σ aᵢ·exp(−mᵢ·t)",
        ("weinmann1984", "tofts1991"),
    ),
    "fritz-hansen": PopulationAIF(
        "fritz-hansen",
        "Fritz-Hansen population AIF",
        "plasma",
        60.0,
        "a bi-exponential, Σ aᵢ·exp(−mᵢ·t)",
        ("fritzhansen1996",),
    ),
    "mcgrath": PopulationAIF(
        "mcgrath",
        "McGrath preclinical population AIF",
        "blood",
        1.0,
        "a linear rise to the peak at t0, then a bi-exponential (model B; rat)",
        ("mcgrath2009",),
    ),
}

#: names accepted by :func:`bidsapp.aif.population.population_aif`
POPULATION_AIFS = tuple(POPULATION_AIF_SPECS)


def get_population_aif(name):
    """Return the :class:`PopulationAIF` of ``name`` (``fritz_hansen`` and ``fritz-hansen`` both work)."""
    key = str(name).lower().replace("_", "-")
    if key not in POPULATION_AIF_SPECS:
        raise ValueError(f"name: unknown population AIF {name!r}; choose one of {POPULATION_AIFS}")
    return POPULATION_AIF_SPECS[key]


def check_population_aif(spec):
    """Raise ``ValueError`` when an entry is incomplete (medium, time unit, formula, known citations)."""
    unknown = [key for key in spec.citations if key not in REFERENCES]
    if spec.medium not in ("blood", "plasma") or not spec.time_unit > 0 or not spec.formula or not spec.human:
        raise ValueError(
            f"{spec.name}: medium (blood|plasma), time unit, formula and human name are required"
        )
    if not spec.citations or unknown:
        raise ValueError(f"{spec.name}: citations {unknown or '()'} not in the bibliography")
    return spec
