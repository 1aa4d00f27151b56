"""The record of a run's effective configuration in ``<output_dir>/logs/``.

Every ``dcequant`` run (participant or group level) writes
``logs/config-<UTC time stamp>_<uuid>.json`` before it processes anything, as fMRIPrep
does: every option after defaults, the configuration file and the command line were
resolved (:meth:`bidsapp.config.Config.to_dict`), the command line itself, and the versions
of dcequant, Python and the libraries that shape the results. The file is written
atomically; one run never overwrites another's record.
"""

from __future__ import annotations

import platform
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from .. import __version__
from ..io_utils import write_json_atomic

#: distributions whose versions are recorded (import names differ for some: pybids is ``bids``)
RECORDED_PACKAGES = (
    "numpy",
    "scipy",
    "torch",
    "pandas",
    "nibabel",
    "pydicom",
    "dcm2niix",
    "pybids",
    "nipype",
    "matplotlib",
    "SimpleITK",
    "bids-validator-deno",
)


def _versions():
    versions = {"dcequant": __version__, "python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_config_record(config, argv=None, now=None):
    """Write the record of ``config`` into ``<config.output_dir>/logs/``; return its path."""
    now = now or datetime.now(UTC)
    run_uuid = uuid.uuid4()
    path = Path(config.output_dir) / "logs" / f"config-{now:%Y%m%dT%H%M%SZ}_{run_uuid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "RunUUID": str(run_uuid),
            "Started": now.isoformat(timespec="seconds"),
            "CommandLine": ["dcequant", *(sys.argv[1:] if argv is None else argv)],
            "Config": config.to_dict(),
            "Versions": _versions(),
        },
    )
    return path
