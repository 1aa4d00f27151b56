"""External command-line tools the tests run, found without hard-coded paths.

A tool installed with the test environment's Python (a console script of a pip package:
``bids-validator-deno``, ``dcm2niix``) lies next to ``sys.executable``; otherwise it is
looked up on ``PATH``.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path


def tool(name):
    """Path of the executable ``name``: beside ``sys.executable``, else on ``PATH``.

    Raises ``FileNotFoundError`` naming the tool when it is in neither place.
    """
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name}: not next to {sys.executable} and not on PATH")
    return found


def bids_validator_errors(folder):
    """``(code, location)`` of every error ``bids-validator-deno`` reports for ``folder``."""
    proc = subprocess.run(
        [tool("bids-validator-deno"), "--format", "json", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    issues = json.loads(proc.stdout)["issues"]["issues"]
    return [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]
