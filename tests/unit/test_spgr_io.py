import json

import numpy as np
import pytest

from bidsapp.io_utils import atomic_path, write_json_atomic
from bidsapp.spgr import spgr_signal


def test_spgr_ernst_angle_is_maximum():
    tr, t1 = 0.005, 1.2
    ernst = np.rad2deg(np.arccos(np.exp(-tr / t1)))
    angles = np.linspace(0.5, 30, 2000)
    s = spgr_signal(1.0, 1 / t1, angles, tr)
    assert abs(angles[np.argmax(s)] - ernst) < 0.05


def test_spgr_b1_scales_angle():
    assert np.isclose(spgr_signal(1, 1, 10, 0.005, b1=1.2), spgr_signal(1, 1, 12, 0.005))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(target, {"a": np.float64(1.5)})
    assert json.loads(target.read_text()) == {"a": 1.5}


def test_atomic_write_gives_the_mode_open_would(tmp_path):
    """Atomic writes honour the umask like open() (mkstemp alone makes 0600 files that other
    members of a group cannot read in a shared HPC output folder)."""
    write_json_atomic(tmp_path / "atomic.json", {"a": 1})
    (tmp_path / "plain.json").write_text("{}")
    assert (tmp_path / "atomic.json").stat().st_mode & 0o777 == (
        tmp_path / "plain.json"
    ).stat().st_mode & 0o777
