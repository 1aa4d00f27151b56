"""Shared fixtures of the test suite.

Tests are grouped by layer: ``unit/`` (science core, I/O and conversion, seconds),
``osipi/`` (OSIPI reference data), ``app/`` (CLI, workflow, derivatives, reports),
``group/`` (group level), ``e2e/`` (slow end-to-end runs), plus ``benchmarks/`` (scripts,
not collected) and ``container/``. Helper modules (``osipi_data.py``, ``realdata.py``,
``dicom_factory.py``, ``golden.py`` …) stay in ``tests/``: pytest puts the folder of this
``conftest.py`` on ``sys.path`` (rootdir-based "prepend" import mode), so every test imports
them by their plain name.
"""
