"""Synthetic DCE-MRI studies with known truth (``dcequant-simulate``).

* :func:`make_phantom` — one subject's brain-like digital reference object
  (:class:`Phantom`) on a :class:`Grid`;
* :func:`simulate_subject` — one session in memory (:class:`SubjectSimulation`: VFA,
  DCE, AIF, noise-free concentration), e.g. for network training;
* :func:`simulate_dose_pair` — pre / low-dose / standard-dose T1w volumes
  (:class:`DosePair`) through the signal equation;
* :func:`simulate_study` — a cohort written as BIDS and/or DICOM with
  ``derivatives/truth`` (:class:`StudySummary`).

Methods, parameter ranges and references: ``docs/simulate.md``.
"""

from .cohort import Cohort
from .geometry import Grid
from .phantom import Phantom, make_phantom
from .protocol import Protocol
from .study import StudySummary, simulate_study
from .subject import DosePair, SubjectSimulation, simulate_dose_pair, simulate_subject

__all__ = [
    "Cohort",
    "DosePair",
    "Grid",
    "Phantom",
    "Protocol",
    "StudySummary",
    "SubjectSimulation",
    "make_phantom",
    "simulate_dose_pair",
    "simulate_study",
    "simulate_subject",
]
