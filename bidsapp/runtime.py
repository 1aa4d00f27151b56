"""Process-wide settings of a dcequant run, made in one place.

Library functions (:func:`bidsapp.fit_model`, the session steps) leave the process as they
found it; whoever owns the process sets it up once: the ``dcequant`` command for the main
process, and a workflow node whose interface may run in a worker process of Nipype's
MultiProc plugin.
"""

from __future__ import annotations


def configure_process(threads=None, seed=None):
    """Set the process up for fitting.

    Parameters
    ----------
    threads : int, optional
        Intra-op threads of torch (``--omp-nthreads``); unchanged when ``None``.
    seed : int, optional
        Seed of torch's and numpy's global random generators (``--random-seed``); unchanged
        when ``None``.

    Also raises glibc's mmap/trim thresholds once per process
    (:func:`bidsapp.fitting.allocator.tune_allocator`; ``DCEQUANT_NO_MALLOC_TUNING=1`` turns
    it off), which keeps the fitting engine's large temporaries on the reusable heap.
    """
    import numpy as np
    import torch

    from .fitting.allocator import tune_allocator

    tune_allocator()
    if threads is not None:
        torch.set_num_threads(int(threads))
    if seed is not None:
        torch.manual_seed(int(seed))
        np.random.seed(int(seed))  # noqa: NPY002 (seeds legacy global-RNG users in dependencies)
