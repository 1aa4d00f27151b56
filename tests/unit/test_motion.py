"""Motion correction and VFA alignment (bidsapp.motion, bidsapp.motion_step): fast checks on small volumes."""

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from bidsapp import motion
from bidsapp.bids_raw import dce_path, vfa_path
from bidsapp.motion_step import motion_step
from bidsapp.simulate import Grid, Protocol, simulate_study


def _blobs(shape, seed=0):
    """A smooth random object with a dark border (a head-like support)."""
    rng = np.random.default_rng(seed)
    vol = gaussian_filter(rng.random(shape), (2.5, 2.5, 1.5 if shape[2] > 1 else 0))
    vol = 100.0 * (vol > np.median(vol)) + 20.0
    vol = gaussian_filter(vol, 1.5)
    border = np.zeros(shape, bool)
    border[4:-4, 4:-4] = True
    return np.where(border, vol, 0.0).astype(np.float32)


def _moved_series(vol, affine, params_list):
    centre = motion.fov_centre(vol.shape, affine)
    matrices = [motion.rigid_matrix(p, centre) for p in params_list]
    frames = [
        motion.resample(vol, affine, np.linalg.inv(m), vol.shape, affine, extrapolate=False) for m in matrices
    ]
    return np.stack(frames, axis=-1), np.stack(matrices)


def test_rigid_parameters_round_trip():
    rng = np.random.default_rng(1)
    centre = rng.normal(0, 30, 3)
    for _ in range(5):
        params = np.r_[rng.uniform(-5, 5, 3), rng.uniform(-0.3, 0.3, 3)]
        np.testing.assert_allclose(
            motion.rigid_params(motion.rigid_matrix(params, centre), centre), params, atol=1e-12
        )


def test_framewise_displacement_follows_power_2012():
    params = np.zeros((3, 6))
    params[1, 0] = 0.2  # 0.2 mm
    params[2, 0] = 0.2
    params[2, 3] = 0.01  # 0.01 rad = 0.5 mm at 50 mm
    fd = motion.framewise_displacement(params)
    assert np.isnan(fd[0])
    np.testing.assert_allclose(fd[1:], [0.2, 0.5])


def test_itk_text_round_trips_through_simpleitk(tmp_path):
    import SimpleITK as sitk

    matrix = motion.rigid_matrix([1.0, -2.0, 0.5, 0.05, -0.02, 0.1], (10.0, 5.0, -3.0))
    path = tmp_path / "x.txt"
    path.write_text(motion.itk_transform_text([matrix, np.eye(4)]))
    assert len(motion.read_itk_transforms(path)) == 2
    np.testing.assert_allclose(motion.read_itk_transforms(path)[0], matrix, atol=1e-8)
    single = tmp_path / "one.txt"
    single.write_text(motion.itk_transform_text([matrix]))
    transform = sitk.ReadTransform(str(single))
    point_ras = np.array([3.0, 4.0, 5.0])
    lps = transform.TransformPoint((-point_ras[0], -point_ras[1], point_ras[2]))
    np.testing.assert_allclose([-lps[0], -lps[1], lps[2]], (matrix @ np.r_[point_ras, 1])[:3], atol=1e-6)


def test_3d_motion_is_recovered_and_undone():
    vol = _blobs((40, 40, 16))
    affine = np.diag([-2.5, 2.5, 3.0, 1.0])
    affine[:3, 3] = [50, -50, -20]
    truth = [np.zeros(6), [1.2, -0.8, 0.6, 0.02, -0.015, 0.03], [-0.5, 1.0, -0.4, -0.01, 0.02, -0.02]]
    series, _ = _moved_series(vol, affine, truth)
    series[..., 1:] *= 1.3  # contrast-like intensity change: mutual information must not care
    result = motion.correct_motion(series, affine, baseline_frames=1, threads=2)
    assert not result.in_plane and result.params.shape == (3, 6)
    error = result.params - np.asarray(truth)
    assert np.abs(error[:, :3]).max() < 0.25 and np.abs(error[:, 3:]).max() < np.deg2rad(0.5)
    inner = (slice(8, -8), slice(8, -8), slice(3, -3))
    before = np.abs(series[..., 2] / 1.3 - series[..., 0])[inner].mean()
    after = np.abs(result.corrected[..., 2] / 1.3 - result.corrected[..., 0])[inner].mean()
    assert after < 0.5 * before


def test_correction_is_deterministic_across_thread_counts():
    """Each registration runs in one thread with a fixed seed, so resumed runs reproduce it."""
    vol = _blobs((32, 32, 10), seed=4)
    affine = np.diag([-3.0, 3.0, 3.0, 1.0])
    truth = [np.zeros(6), [0.7, 0.3, -0.4, 0.01, 0.0, -0.02], [0.2, -0.5, 0.3, 0, 0.01, 0]]
    series, _ = _moved_series(vol, affine, truth)
    one = motion.correct_motion(series, affine, 1, threads=1)
    two = motion.correct_motion(series, affine, 1, threads=2)
    assert np.array_equal(one.matrices, two.matrices) and np.array_equal(one.corrected, two.corrected)


@pytest.mark.parametrize("nz", [1, 4])
def test_single_slice_and_thin_slab_use_the_in_plane_model(nz):
    vol = _blobs((48, 40, nz), seed=2)
    affine = np.diag([-2.0, 2.0, 5.0, 1.0])
    series, matrices = _moved_series(vol, affine, [np.zeros(6), [1.5, -1.0, 0, 0, 0, np.deg2rad(3)]])
    result = motion.correct_motion(series, affine, baseline_frames=1, threads=1)
    assert result.in_plane
    assert np.isnan(result.params[:, [2, 3, 4]]).all()  # through-plane motion is not estimated
    centre = motion.fov_centre(vol.shape, affine)
    recovered = motion.rigid_params(result.matrices[1], centre)
    np.testing.assert_allclose(recovered, [1.5, -1.0, 0, 0, 0, np.deg2rad(3)], atol=0.15)


def test_vfa_on_a_finer_other_grid_lands_on_the_dce_grid():
    """2 mm VFA with another FOV and a shift, onto a 3 mm DCE grid: registered and resampled once."""
    dce_affine = np.diag([-3.0, 3.0, 3.0, 1.0])
    dce_affine[:3, 3] = [45, -45, -18]
    dce_ref = _blobs((30, 30, 12), seed=3)
    # the same object on a 2 mm grid covering a different (smaller in x, larger in z) field of view
    vfa_affine = np.diag([-2.0, 2.0, 2.0, 1.0])
    vfa_affine[:3, 3] = [40, -46, -22]
    shift = motion.rigid_matrix([1.0, -1.5, 0.8, 0, 0, 0.02], motion.fov_centre(dce_ref.shape, dce_affine))
    grid_map = np.linalg.inv(dce_affine) @ np.linalg.inv(shift) @ vfa_affine  # vfa voxel -> dce voxel
    from scipy.ndimage import affine_transform

    vfa_ref = affine_transform(dce_ref, grid_map[:3, :3], grid_map[:3, 3], output_shape=(40, 46, 22), order=1)
    vfa = [0.5 * vfa_ref, vfa_ref]
    aligned = motion.align_vfa(vfa, [vfa_affine] * 2, dce_ref, dce_affine, reference_index=1)
    params = motion.rigid_params(aligned.to_reference, motion.fov_centre(dce_ref.shape, dce_affine))
    np.testing.assert_allclose(params[:3], [1.0, -1.5, 0.8], atol=0.35)
    assert aligned.vfa[1].shape == dce_ref.shape and 0.5 < aligned.coverage.mean() < 1.0
    inner = aligned.coverage & (dce_ref > 50)
    inner[:, :, [0, -1]] = False
    ratio = aligned.vfa[1][inner] / dce_ref[inner]
    assert np.median(np.abs(ratio - 1)) < 0.1
    assert (aligned.vfa[0][~aligned.coverage] == 0).all()


def test_no_overlap_is_refused():
    affine = np.eye(4)
    far = np.eye(4)
    far[0, 3] = 500.0
    with pytest.raises(ValueError, match="does not overlap"):
        motion.align_vfa([np.ones((8, 8, 8))] * 2, [far] * 2, np.ones((8, 8, 8)), affine, 0)


@pytest.fixture(scope="module")
def moving_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion_study")
    simulate_study(
        root,
        n_subjects=1,
        n_sessions=1,
        grid=Grid((32, 32, 10), (6.0, 6.0, 5.0)),
        protocol=Protocol(motion=1.0, n_frames=8, baseline_frames=3, snr=60),
        overwrite=True,
    )
    return root


def test_motion_step_writes_confounds_transforms_and_aligned_inputs(moving_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dce = dce_path(moving_study, "01", None)
    vfa = [vfa_path(moving_study, "01", None, i) for i in range(1, 5)]
    out = motion_step(dce, vfa, None, 3, True, 0.5, 2, moving_study)
    assert out["dce"] != str(dce) and Path(out["dce"]).with_name("sub-01_dce.json").is_file()
    assert all(nib.load(v).shape == nib.load(dce).shape[:3] for v in out["vfa"])
    entries = {(e["suffix"], e["desc"]): e for e in json.loads(Path(out["manifest"]).read_text())}
    confounds = entries[("timeseries", "confounds")]
    lines = Path(confounds["source"]).read_text().splitlines()
    assert lines[0].split("\t") == [
        "trans_x",
        "trans_y",
        "trans_z",
        "rot_x",
        "rot_y",
        "rot_z",
        "framewise_displacement",
        "motion_outlier",
    ]
    assert len(lines) == 9 and lines[1].split("\t")[6] == "n/a"
    for column in lines[0].split("\t"):
        assert "Description" in confounds["sidecar"][column]
    assert (
        confounds["sidecar"]["trans_x"]["Units"] == "mm" and confounds["sidecar"]["rot_x"]["Units"] == "rad"
    )
    hmc = entries[("xfm", "hmc")]
    assert hmc["entities"] == {"from": "orig", "to": "dceref", "mode": "image"}
    assert len(motion.read_itk_transforms(hmc["source"])) == 8
    assert ("dce", "hmc") in entries and ("xfm", None) in entries


def test_no_motion_correction_passes_same_grid_inputs_through(moving_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dce = dce_path(moving_study, "01", None)
    vfa = [vfa_path(moving_study, "01", None, i) for i in range(1, 5)]
    out = motion_step(dce, vfa, None, None, False, 0.5, 1, moving_study)
    assert out["dce"] == str(dce) and out["vfa"] == [str(v) for v in vfa]
    assert json.loads(Path(out["manifest"]).read_text()) == []


def test_motion_options_parse_into_the_config():
    from bidsapp.cli.run import parse_config
    from bidsapp.config import make_config

    default = parse_config(["b", "o", "participant"])
    assert default.motion_correction is True and default.fd_threshold == 0.5
    cfg = parse_config(["b", "o", "participant", "--no-motion-correction", "--fd-threshold", "0.9"])
    assert cfg.motion_correction is False and cfg.fd_threshold == 0.9
    with pytest.raises(ValueError, match="--fd-threshold"):
        make_config({"fd_threshold": 0.0})


def test_too_small_a_series_is_passed_through_with_a_warning(tmp_path, monkeypatch, caplog):
    root = tmp_path / "tiny"
    simulate_study(
        root,
        n_subjects=1,
        grid=Grid((12, 12, 2), (18.0, 18.0, 5.0)),
        protocol=Protocol(n_frames=6),
        overwrite=True,
    )
    monkeypatch.chdir(tmp_path)
    dce = dce_path(root, "01", None)
    with pytest.raises(ValueError, match="at least 16 voxels"):
        motion.correct_motion(np.ones((12, 12, 2, 3)), np.eye(4), 1)
    assert (
        not motion.registrable((32, 32, 2))
        and motion.registrable((32, 32, 1))
        and motion.registrable((16, 16, 4))
    )
    out = motion_step(dce, [], None, None, True, 0.5, 1, root)
    assert out["dce"] == str(dce) and "motion correction skipped" in caplog.text
