"""Keep large temporary arrays on the reusable heap (glibc).

The fitting engine works on time × voxel arrays of tens of megabytes. glibc serves
allocations above its mmap threshold (at most 32 MB, dynamically adjusted) with fresh
``mmap`` pages, so every temporary is page-faulted in again: on the 2-core test machine
this made elementwise passes 1.5–2× slower. Raising the mmap and trim thresholds keeps
freed blocks in the heap for reuse (the same effect as PyTorch's advice to run CPU
workloads with a caching allocator such as jemalloc or tcmalloc). The cost is that the
process keeps its peak heap instead of returning it to the system between fits.

Applied once per process by :func:`bidsapp.runtime.configure_process` (called by the
``dcequant`` command and by the fit node of the workflow), never by the library itself;
a no-op off glibc, and disabled by setting the environment variable
``DCEQUANT_NO_MALLOC_TUNING=1``. Scripts that call :func:`bidsapp.fit_model` on large
arrays may call it themselves.
"""

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from <malloc.h>
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30  # 1 GiB
_done = False


def tune_allocator():
    """Raise glibc's mmap/trim thresholds once; return True if the tuning was applied."""
    global _done
    if _done:
        return True
    if os.environ.get("DCEQUANT_NO_MALLOC_TUNING"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _THRESHOLD))
    return _done
