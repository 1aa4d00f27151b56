"""Tissue classes of the digital reference object and their literature parameter priors.

Every tissue class has, per parameter, a subject-level prior: a log-normal distribution
given by its median and log-scale spread ``sigma`` (≈ coefficient of variation between
subjects), truncated to a documented literature range ``[low, high]``, plus a
within-subject coefficient of variation ``cv`` used for smooth spatial variation inside
the class. Units: T1 in s, M0 relative to CSF (proton density), Ktrans in 1/min, ve and
vp as fractions.

Sources (full references in ``docs/simulate.md``):

* T1 at 1.5 T and 3 T: Stanisz et al. MRM 2005;54:507; Wansapura et al. JMRI 1999;9:531;
  Rooney et al. MRM 2007;57:308; blood: Lu et al. MRM 2004;52:679; tumour, necrosis and
  oedema: prolonged T1 relative to grey matter (e.g. Rooney 2007, Stanisz 2005).
* M0 (water content): Neeb, Zilles, Shah. NeuroImage 2006;31:1156.
* Normal brain kinetics (intact blood-brain barrier, Ktrans of order 1e-4..1e-3 /min,
  plasma volume from CBV × (1 − Hct)): Larsson et al. MRM 2009;62:1270; Heye et al.
  NeuroImage Clin 2014;6:262; Leenders et al. Brain 1990;113:27; extracellular volume
  ≈ 0.2: Syková & Nicholson. Physiol Rev 2008;88:1277.
* Enhancing glioma rim / necrosis: Patankar et al. AJNR 2005;26:2455; Law et al. AJNR
  2004;25:746; Tofts et al. JMRI 1999;10:223.
* Vessels: a voxel of whole blood has plasma volume fraction ``1 − Hct`` and no
  extravascular space, so arteries and the sinus get ``vp = 1 − hematocrit``,
  ``Ktrans = ve = 0`` (their concentration equals the blood concentration).
"""

from dataclasses import dataclass

import numpy as np

#: dseg index -> (name, abbreviation); 0 is background (air outside the head).
TISSUE_CLASSES = {
    0: ("background", "BG"),
    1: ("white_matter", "WM"),
    2: ("grey_matter", "GM"),
    3: ("csf", "CSF"),
    4: ("artery", "ART"),
    5: ("sagittal_sinus", "SSS"),
    6: ("tumour_rim", "TRIM"),
    7: ("tumour_necrosis", "TNEC"),
    8: ("non_enhancing_lesion", "LES"),
}
CLASS_INDEX = {name: index for index, (name, _) in TISSUE_CLASSES.items()}
VESSEL_CLASSES = ("artery", "sagittal_sinus")
PARAMETERS = ("T1", "M0", "Ktrans", "ve", "vp")
#: field strengths (T) at which T1 priors are tabulated; others interpolate linearly
T1_FIELDS = (1.5, 3.0)


@dataclass(frozen=True)
class Prior:
    """Truncated log-normal subject-level prior and within-subject variation.

    ``median`` and the truncation range ``[low, high]`` are in the parameter's unit;
    ``sigma`` is the between-subject SD of the natural log; ``cv`` the within-subject
    spatial SD of the natural log. ``median == 0`` means the parameter is fixed at 0.
    """

    median: float
    sigma: float
    low: float
    high: float
    cv: float

    def draw(self, rng, shift=0.0):
        """One subject value; ``shift`` moves the log-median by ``shift`` × ``sigma``."""
        if self.median == 0.0:
            return 0.0
        for _ in range(1000):
            value = self.median * np.exp(self.sigma * (shift + rng.standard_normal()))
            if self.low <= value <= self.high:
                return float(value)
        raise ValueError(f"prior {self} with shift {shift} cannot be sampled inside its range")


# T1 priors per field strength: (median, sigma, low, high, cv)
_T1 = {
    1.5: {
        "white_matter": (0.78, 0.06, 0.60, 0.95, 0.04),
        "grey_matter": (1.12, 0.06, 0.95, 1.35, 0.04),
        "csf": (4.0, 0.04, 3.5, 4.5, 0.02),
        "artery": (1.44, 0.04, 1.30, 1.60, 0.01),
        "sagittal_sinus": (1.44, 0.04, 1.30, 1.60, 0.01),
        "tumour_rim": (1.30, 0.08, 1.00, 1.60, 0.06),
        "tumour_necrosis": (2.00, 0.08, 1.50, 2.60, 0.06),
        "non_enhancing_lesion": (1.35, 0.07, 1.10, 1.70, 0.05),
    },
    3.0: {
        "white_matter": (0.90, 0.06, 0.75, 1.15, 0.04),
        "grey_matter": (1.50, 0.06, 1.30, 1.90, 0.04),
        "csf": (4.2, 0.04, 3.7, 4.7, 0.02),
        "artery": (1.70, 0.04, 1.55, 2.00, 0.01),
        "sagittal_sinus": (1.70, 0.04, 1.55, 2.00, 0.01),
        "tumour_rim": (1.60, 0.08, 1.30, 2.00, 0.06),
        "tumour_necrosis": (2.30, 0.08, 1.80, 3.00, 0.06),
        "non_enhancing_lesion": (1.75, 0.07, 1.40, 2.20, 0.05),
    },
}

# Field-independent priors: (median, sigma, low, high, cv); vessels' vp is set from Hct.
_OTHER = {
    "white_matter": {
        "M0": (0.69, 0.03, 0.64, 0.74, 0.02),
        "Ktrans": (0.0005, 0.4, 0.0001, 0.002, 0.10),
        "ve": (0.15, 0.2, 0.08, 0.30, 0.10),
        "vp": (0.012, 0.2, 0.005, 0.025, 0.10),
    },
    "grey_matter": {
        "M0": (0.80, 0.03, 0.75, 0.86, 0.02),
        "Ktrans": (0.001, 0.4, 0.0002, 0.004, 0.10),
        "ve": (0.20, 0.2, 0.10, 0.35, 0.10),
        "vp": (0.030, 0.2, 0.015, 0.050, 0.10),
    },
    "csf": {
        "M0": (1.0, 0.02, 0.95, 1.05, 0.01),
        "Ktrans": (0.0, 0.0, 0.0, 0.0, 0.0),
        "ve": (0.0, 0.0, 0.0, 0.0, 0.0),
        "vp": (0.0, 0.0, 0.0, 0.0, 0.0),
    },
    "artery": {
        "M0": (0.87, 0.02, 0.82, 0.92, 0.01),
        "Ktrans": (0.0, 0.0, 0.0, 0.0, 0.0),
        "ve": (0.0, 0.0, 0.0, 0.0, 0.0),
    },
    "sagittal_sinus": {
        "M0": (0.87, 0.02, 0.82, 0.92, 0.01),
        "Ktrans": (0.0, 0.0, 0.0, 0.0, 0.0),
        "ve": (0.0, 0.0, 0.0, 0.0, 0.0),
    },
    "tumour_rim": {
        "M0": (0.84, 0.03, 0.78, 0.90, 0.03),
        "Ktrans": (0.04, 0.35, 0.005, 0.50, 0.25),
        "ve": (0.30, 0.2, 0.10, 0.70, 0.15),
        "vp": (0.040, 0.3, 0.005, 0.25, 0.25),
    },
    "tumour_necrosis": {
        "M0": (0.92, 0.03, 0.85, 0.98, 0.03),
        "Ktrans": (0.005, 0.4, 0.0005, 0.03, 0.15),
        "ve": (0.40, 0.2, 0.15, 0.80, 0.10),
        "vp": (0.005, 0.3, 0.001, 0.02, 0.15),
    },
    "non_enhancing_lesion": {
        "M0": (0.88, 0.03, 0.82, 0.94, 0.03),
        "Ktrans": (0.0008, 0.4, 0.0001, 0.003, 0.10),
        "ve": (0.30, 0.2, 0.15, 0.50, 0.10),
        "vp": (0.015, 0.25, 0.005, 0.030, 0.10),
    },
}

#: venous transit delay of the sagittal sinus relative to the arterial input (s)
SINUS_DELAY = Prior(median=4.0, sigma=0.2, low=2.0, high=8.0, cv=0.0)


def t1_prior(tissue, field_strength):
    """T1 prior of ``tissue`` at ``field_strength`` (T), linear between 1.5 and 3 T."""
    b0 = float(field_strength)
    if not T1_FIELDS[0] <= b0 <= T1_FIELDS[1]:
        raise ValueError(f"field_strength {b0} T outside the tabulated range {T1_FIELDS} T")
    w = (b0 - T1_FIELDS[0]) / (T1_FIELDS[1] - T1_FIELDS[0])
    lo, hi = np.array(_T1[T1_FIELDS[0]][tissue]), np.array(_T1[T1_FIELDS[1]][tissue])
    return Prior(*((1.0 - w) * lo + w * hi))


def priors(field_strength, hematocrit):
    """All priors: ``{tissue: {parameter: Prior}}`` (background excluded).

    Vessel ``vp`` is the plasma fraction of whole blood, ``1 − hematocrit``, fixed.
    """
    if not 0.0 < hematocrit < 1.0:
        raise ValueError(f"hematocrit {hematocrit} must lie in (0, 1)")
    table = {}
    for index, (tissue, _) in TISSUE_CLASSES.items():
        if index == 0:
            continue
        entry = {"T1": t1_prior(tissue, field_strength)}
        entry.update({p: Prior(*v) for p, v in _OTHER[tissue].items()})
        if tissue in VESSEL_CLASSES:
            vp = 1.0 - hematocrit
            entry["vp"] = Prior(vp, 0.0, vp, vp, 0.0)
        table[tissue] = entry
    return table


def draw_subject_parameters(rng, field_strength=3.0, hematocrit=0.45, shifts=None):
    """Subject-level parameter values ``{tissue: {parameter: value}}``.

    ``shifts`` maps ``(tissue, parameter)`` to a shift of the log-median in units of
    the prior's between-subject ``sigma`` (a Cohen's d on the log scale), used for
    group effects. Vessels' fixed ``vp`` cannot be shifted.
    """
    shifts = dict(shifts or {})
    table = priors(field_strength, hematocrit)
    for tissue, parameter in shifts:
        if tissue not in table or parameter not in PARAMETERS:
            raise ValueError(f"cannot shift unknown tissue/parameter {tissue!r}/{parameter!r}")
    values = {}
    for tissue, entry in table.items():
        values[tissue] = {}
        for parameter in PARAMETERS:
            prior = entry[parameter]
            if prior.sigma == 0.0:
                values[tissue][parameter] = float(prior.median)
            else:
                values[tissue][parameter] = prior.draw(rng, shifts.get((tissue, parameter), 0.0))
    return values


def parameter_ranges(field_strength=3.0, hematocrit=0.45):
    """Documented ``(low, high)`` range of every tissue parameter, for checks and docs."""
    return {
        tissue: {p: (prior.low, prior.high) for p, prior in entry.items()}
        for tissue, entry in priors(field_strength, hematocrit).items()
    }
