"""OSIPI Code Collection signal-to-concentration cases (5) at OSIPI's tolerance.

OSIPI's convention: baseline = mean of samples 1..n-1 (sample 0 excluded), and sample 0
is not compared. Tolerance a_tol 1e-5 mM, r_tol 1e-5.
"""

import numpy as np
import pytest
from osipi_data import si2conc_cases

from bidsapp import signal_to_concentration


@pytest.mark.parametrize("fa, tr, t10, n_baseline, r1, signal, conc_ref, a_tol, r_tol", si2conc_cases())
def test_osipi_signal_to_concentration(fa, tr, t10, n_baseline, r1, signal, conc_ref, a_tol, r_tol):
    result = signal_to_concentration(signal, t10, tr, fa, r1, slice(1, n_baseline))
    assert result.voxel_valid
    np.testing.assert_allclose(result.concentration[1:], conc_ref[1:], rtol=r_tol, atol=a_tol)


def test_osipi_conc_case_count():
    assert len(si2conc_cases()) == 5
