"""Atomic file writing, and the lock that serialises updates of shared dataset files.

Every derivative and converted file is written to a temporary file in the target
folder and renamed into place, so a crash never leaves a partial or corrupt file.
Files that several concurrent runs update (``dataset_description.json``,
``.bidsignore``, ``participants.tsv``, the staging folder) are read, changed and
written while holding :func:`dataset_lock`, so that two participants processed at
once (two SLURM array tasks, two shells) into one folder do not lose each other's
updates.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

from filelock import FileLock

#: lock file of a dataset folder (hidden: BIDS validators ignore dot files)
LOCK_NAME = ".dcequant.lock"
#: seconds to wait for another run's lock before giving up
LOCK_TIMEOUT = 600.0
#: the process's umask, read once at import (os.umask can only be read by setting it)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def dataset_lock(root, timeout=LOCK_TIMEOUT):
    """Return an inter-process lock on the dataset folder ``root``.

    An inter-process lock on the dataset folder ``root`` (created if missing), for use as ``with
    dataset_lock(root): ...`` around read-modify-write updates of its shared files.

    Uses ``fcntl``/``flock`` through :mod:`filelock`; raises ``filelock.Timeout`` after
    ``timeout`` s. Holding it is short (small text files, renames), so waiting is rare.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / LOCK_NAME), timeout=timeout)


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The temporary name keeps the final suffix(es) (e.g. ``.nii.gz``) so writers that
    infer the format from the extension work. On any exception the temporary file is
    removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(path.suffixes) or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would (shared HPC folders)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path, text):
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path, data):
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def save_nifti_atomic(img, path):
    """Save a nibabel image to ``path`` atomically."""
    import nibabel as nib

    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_option_file(path, option, loads=None):
    """Read the top-level object of a settings file given with ``option``.

    The top-level object of a settings file given with ``option`` (JSON, or whatever ``loads`` parses, e.g.
    ``tomllib.loads``); one-line ``ValueError`` naming the option and the file when it cannot be read or is
    not an object/table.
    """
    path = Path(path)
    try:
        data = (loads or json.loads)(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{option} {path}: cannot read ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{option} {path}: top level must be an object/table")
    return data
