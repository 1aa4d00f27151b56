"""Shared fixtures of the test suite.

Tests are grouped by layer: ``unit/`` (science core, I/O and conversion, seconds),
``osipi/`` (OSIPI reference data), ``app/`` (CLI, workflow, derivatives, reports),
``group/`` (group level), ``e2e/`` (slow end-to-end runs), plus ``benchmarks/`` (scripts,
not collected) and ``container/``. Helper modules (``osipi_data.py``, ``realdata.py``,
``dicom_factory.py``, ``golden.py`` …) stay in ``tests/``: pytest puts the folder of this
``conftest.py`` on ``sys.path`` (rootdir-based "prepend" import mode), so every test imports
them by their plain name.
"""

import pytest

#: the tiny simulated study: 2 subjects × 2 sessions of 8×8×2 voxels (27.5×27.5×5 mm), 40
#: frames, 10 % B1 inhomogeneity, noisy (the simulator's default SNR); VFA, B1 and truth
TINY_STUDY = {
    "n_subjects": 2,
    "n_sessions": 2,
    "matrix": (8, 8, 2),
    "voxel_size": (27.5, 27.5, 5.0),
    "protocol": {"b1_amplitude": 0.1},
}


@pytest.fixture(scope="session")
def simulated_study(tmp_path_factory):
    """Factory of simulated raw BIDS studies, each simulated once per test session.

    ``simulated_study(n_subjects=…, n_sessions=…, matrix=…, voxel_size=…, protocol={…},
    **simulate_study_keywords)`` returns the root of a study written by
    :func:`bidsapp.simulate.simulate_study` (truth under ``derivatives/truth``). Tests that
    change the study must restore it (it is shared).
    """
    from bidsapp.simulate import Grid, Protocol, simulate_study

    cache = {}

    def make(
        n_subjects=1, n_sessions=1, matrix=(8, 8, 2), voxel_size=(27.5, 27.5, 5.0), protocol=None, **keywords
    ):
        key = repr(
            (
                n_subjects,
                n_sessions,
                matrix,
                voxel_size,
                sorted((protocol or {}).items()),
                sorted(keywords.items()),
            )
        )
        if key not in cache:
            root = tmp_path_factory.mktemp("study")
            simulate_study(
                root,
                n_subjects=n_subjects,
                n_sessions=n_sessions,
                grid=Grid(tuple(matrix), tuple(voxel_size)),
                protocol=Protocol(**(protocol or {})),
                overwrite=True,
                **keywords,
            )
            cache[key] = root
        return cache[key]

    return make


@pytest.fixture(scope="session")
def tiny_study(simulated_study):
    """Root of the tiny simulated study (:data:`TINY_STUDY`), shared by the app tests."""
    return simulated_study(**TINY_STUDY)
