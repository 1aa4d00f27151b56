"""Spoiled gradient-echo (SPGR / FLASH) steady-state signal equation.

The one place the SPGR equation lives; T1 mapping, signal-to-concentration and the
simulator all use it.

    S = M0 · sin(α) · (1 − E1) / (1 − cos(α) · E1),   E1 = exp(−TR · R1)

with α the actual flip angle (nominal angle × relative B1), TR in s and R1 in 1/s.
T2* decay is folded into M0 (short TE assumption).

Reference: Deoni SCL, Rutt BK, Peters TM. MRM 2003;49:515-526 (DESPOT1).
"""

import numpy as np
from numpy.typing import ArrayLike


def spgr_signal(
    m0: ArrayLike,
    r1: ArrayLike,
    flip_angle: ArrayLike,
    tr: float,
    b1: ArrayLike = 1.0,
) -> np.ndarray:
    """Steady-state SPGR signal.

    Parameters
    ----------
    m0 : array_like
        Equilibrium magnetisation (signal units, includes receive gain and T2*).
    r1 : array_like
        Longitudinal relaxation rate in 1/s.
    flip_angle : array_like
        Nominal flip angle in degrees.
    tr : float
        Repetition time in s.
    b1 : array_like, optional
        Relative transmit field; the actual angle is ``b1 * flip_angle``.

    Returns
    -------
    numpy.ndarray
        Signal, broadcast over the inputs.
    """
    alpha = np.deg2rad(np.asarray(flip_angle, dtype=float) * np.asarray(b1, dtype=float))
    e1 = np.exp(-float(tr) * np.asarray(r1, dtype=float))
    return np.asarray(m0, dtype=float) * np.sin(alpha) * (1.0 - e1) / (1.0 - np.cos(alpha) * e1)
