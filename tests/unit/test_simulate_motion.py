"""Simulated motion: each moved volume is a fresh sampling of the moved head (no interpolation)."""

import numpy as np
import pytest

from bidsapp.simulate import Grid, Protocol, make_phantom
from bidsapp.simulate.acquisition import pose_matrix
from bidsapp.simulate.kinetics import (
    FrameResponses,
    SessionInput,
    fine_time_grid,
    plasma_aif,
    tissue_concentration,
)
from bidsapp.simulate.subject import _moving_dce, _relaxivity

GRID = Grid(matrix=(36, 40, 6), voxel_size=(5.0, 5.0, 5.0))
PROTOCOL = Protocol(n_frames=10, baseline_frames=3)


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(11, GRID, supersample=2)


@pytest.fixture(scope="module")
def inputs():
    t_fine, every = fine_time_grid(PROTOCOL)
    return t_fine, every, plasma_aif(PROTOCOL, SessionInput(12.0, 1.0), t_fine)


def test_frame_responses_reproduce_the_model_curves(phantom, inputs):
    t_fine, every, cp = inputs
    exact = tissue_concentration(phantom, t_fine, cp, every)
    responses = FrameResponses.build(t_fine, cp, every, (0.0, phantom.sinus_delay))
    head = phantom.t1 > 0
    assert np.any(phantom.delay[head] > 0)  # the delayed sinus is covered
    for n in range(PROTOCOL.n_frames):
        c = responses.concentration(
            n, phantom.ktrans[head], phantom.kep[head], phantom.vp[head], phantom.delay[head]
        )
        np.testing.assert_allclose(c, exact[head, n], rtol=0, atol=1e-6 * max(exact.max(), 1e-9))
    with pytest.raises(ValueError, match="kep outside"):
        responses.concentration(0, [0.1], [1e4], [0.0], [0.0])


def test_moved_phantom_is_the_head_sampled_at_the_moved_points(phantom):
    same = phantom.moved(np.eye(4))
    for name in ("fractions", "t1", "m0", "ktrans", "ve", "vp", "kep", "delay", "dseg"):
        np.testing.assert_array_equal(getattr(same, name), getattr(phantom, name))
    # one voxel (5 mm) to the patient's right... x = -5 i + c: +5 mm in x is one voxel down in i
    shifted = phantom.moved(pose_matrix([5.0, 0, 0, 0, 0, 0]))
    for name in ("fractions", "t1", "ktrans", "vp"):
        np.testing.assert_array_equal(getattr(shifted, name)[:-1], getattr(phantom, name)[1:])
    # a rotation keeps the head's volume (fresh sampling: no interpolation blur or loss)
    turned = phantom.moved(pose_matrix([0, 0, 0, 0, 0, 7.0]))
    head = lambda p: p.fractions[..., 1:].sum()  # noqa: E731
    assert head(turned) == pytest.approx(head(phantom), rel=0.01)
    assert not np.array_equal(turned.fractions, phantom.fractions)


def test_moving_frames_are_the_moved_head_through_the_signal_equation(phantom, inputs):
    t_fine, every, cp = inputs
    responses = FrameResponses.build(t_fine, cp, every, (0.0, phantom.sinus_delay))
    b1 = np.ones(GRID.matrix)
    trace = np.zeros((PROTOCOL.n_frames, 6))
    trace[4:, 1] = -5.0  # frames 4.. one voxel posterior (j - 1)
    still = _moving_dce(phantom, np.zeros_like(trace), responses, PROTOCOL, _relaxivity(PROTOCOL), b1)
    moving = _moving_dce(phantom, trace, responses, PROTOCOL, _relaxivity(PROTOCOL), b1)
    np.testing.assert_array_equal(moving[..., :4], still[..., :4])
    np.testing.assert_allclose(moving[:, :-1, :, 4:], still[:, 1:, :, 4:], rtol=1e-6, atol=1e-3)
    assert np.abs(moving[..., 4:] - still[..., 4:]).max() > 100.0
