"""Network architectures, prior-only sampling and a deterministic training run."""

import json

import numpy as np
import torch

from bidsapp.nets.cnn import DirectCNN
from bidsapp.nets.prob_unet import ProbUNet
from bidsapp.nets.training.cli import main as train_main
from bidsapp.nets.training.punet import architecture as punet_architecture
from bidsapp.nets.weights import sha256_of


def test_cnn_is_fully_convolutional_and_non_negative():
    torch.manual_seed(0)
    net = DirectCNN(n_times=7, temporal=8, spatial=4, head=8)
    for shape in ((1, 14, 20, 20), (2, 14, 33, 17)):
        out = net(torch.randn(shape))
        assert out.shape == (shape[0], 3) + shape[2:]
        assert bool((out >= 0).all())


def test_cnn_tissue_gain_scales_only_the_concentration_channels():
    torch.manual_seed(0)
    plain = DirectCNN(n_times=7, temporal=8, spatial=4, head=8)
    gained = DirectCNN(n_times=7, temporal=8, spatial=4, head=8, tissue_gain=10.0)
    gained.load_state_dict(plain.state_dict())
    x = torch.rand(2, 14, 9, 8)
    scaled = torch.cat([10.0 * x[:, :7], x[:, 7:]], dim=1)
    assert torch.allclose(gained(x), plain(scaled), atol=1e-6)
    assert not torch.allclose(gained(x), plain(x), atol=1e-3)


def test_prob_unet_samples_the_prior_never_the_posterior(monkeypatch):
    torch.manual_seed(0)
    net = ProbUNet(n_times=7, tcn_channels=4, features=4, channels=(4, 8, 8), latent=2, head=8).eval()

    def forbidden(*args, **kwargs):
        raise AssertionError("the posterior net was called at inference")

    monkeypatch.setattr(net.posterior, "forward", forbidden)
    x = torch.randn(2, 14, 21, 18)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    mean, sd = net.sample(x, 5, g1)
    assert mean.shape == sd.shape == (2, 3, 21, 18)
    assert bool((mean >= 0).all()) and bool((sd > 0).all())
    again, _ = net.sample(x, 5, g2)
    assert torch.equal(mean, again)


def test_tcn_tissue_gain_scales_only_the_tissue_channel_and_norm_standardises():
    from bidsapp.nets.tcn import TemporalConvNet

    torch.manual_seed(0)
    plain = TemporalConvNet(7, 4, out_channels=3, tissue_gain=1.0, feature_norm=False)
    gained = TemporalConvNet(7, 4, out_channels=3, tissue_gain=20.0, feature_norm=True)
    gained.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(2, 14, 9, 8)
    scaled = torch.cat([20.0 * x[:, :7], x[:, 7:]], dim=1)
    gained.norm.eval()  # running statistics 0/1 at initialisation: the norm is the identity
    assert torch.allclose(gained(x), plain(scaled), atol=1e-6)
    gained.norm.train()
    features = gained(x)
    assert torch.allclose(features.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


def _dilated_causal_reference(tcn, curves):
    """The same TCN run as a full dilated causal stack (kernel 2, dilations 1, 2, 4, ...) at every step."""
    x = torch.nn.functional.pad(curves, (0, 0, tcn.length - curves.shape[1], 0))  # [M, L, 2]
    m, length, _ = x.shape
    pairs = torch.cat([torch.nn.functional.pad(x, (0, 0, 1, 0))[:, :-1], x], dim=2)  # (t-1, t) taps
    h = tcn.act(tcn.inp(pairs))
    dilation = 2
    for level in tcn.levels:
        earlier = torch.nn.functional.pad(h, (0, 0, dilation, 0))[:, :length]
        taps = level.act(level.taps(torch.cat([earlier, h], dim=2)))
        h = level.act(h + level.mix(taps))
        dilation *= 2
    return tcn.out(h[:, -1])


def test_tcn_equals_a_dilated_causal_stack_read_at_its_last_step():
    from bidsapp.nets.tcn import TemporalConvNet

    torch.manual_seed(0)
    tcn = TemporalConvNet(13, 5, out_channels=3, tissue_gain=1.0, feature_norm=False)  # padded to 16 steps
    x = torch.randn(1, 26, 3, 4)
    curves = x.view(1, 2, 13, 12).permute(0, 3, 2, 1).reshape(12, 13, 2)
    expected = _dilated_causal_reference(tcn, curves).T.reshape(1, 3, 3, 4)
    assert torch.allclose(tcn(x), expected, atol=1e-5)
    # causal over the whole curve: the last feature depends on the first sample
    x2 = x.clone()
    x2[:, 0] += 1.0
    assert not torch.allclose(tcn(x2), tcn(x))


def test_short_training_is_reproducible_and_writes_a_complete_card(tmp_path):
    args = [
        "--epochs",
        "1",
        "--steps",
        "1",
        "--batch",
        "2",
        "--pool",
        "2",
        "--refresh",
        "1",
        "--validation",
        "1",
        "--quiet",
        "--threads",
        "1",
    ]
    digests = []
    for run, extra in (("a", []), ("b", []), ("clipped", ["--clip-grad", "1e-4"])):
        assert train_main(["cnn", "--out", str(tmp_path / run), *args, *extra]) == 0
        digests.append(sha256_of(tmp_path / run / "cnn.pt"))
    assert digests[0] == digests[1]
    card = json.loads((tmp_path / "a" / "cnn.json").read_text())
    assert card["sha256"] == digests[0]
    # the measured gradient norm is far above 1e-4, so clipping to it changes the step
    assert card["training"]["curves"][0]["grad_norm_max"] > 1e-3
    assert digests[2] != digests[0]
    clipped = json.loads((tmp_path / "clipped" / "cnn.json").read_text())
    assert clipped["training"]["hyperparameters"]["clip_grad"] == 1e-4
    assert card["training"]["command"].startswith("dcequant-train cnn --out")
    assert card["training"]["cpu_s"] > 0 and card["input_contract"]["time_grid_s"]["n"] == 61
    assert np.isfinite(card["metrics"]["validation"]["rmse_Ktrans"])
    assert card["training"]["hyperparameters"]["near_vessel_weight"] == 4.0
    assert np.isfinite(card["metrics"]["validation"]["rmse_near_vp"])
    assert train_main(["cnn", "--out", str(tmp_path / "c"), *args, "--near-vessel-weight", "1"]) == 0
    assert sha256_of(tmp_path / "c" / "cnn.pt") != digests[0]  # the weighting reaches the loss


def test_punet_tcn_options_are_recorded_and_reload(tmp_path):
    from bidsapp.nets.weights import load_weights

    args = ["--epochs", "1", "--steps", "1", "--batch", "1", "--pool", "1", "--refresh", "1"]
    args += ["--validation", "1", "--quiet", "--threads", "1", "--tissue-gain", "10", "--no-feature-norm"]
    args += ["--beta-nll", "0.25", "--calibration", "2"]
    assert train_main(["punet", "--out", str(tmp_path), *args]) == 0
    shipped = load_weights("punet", tmp_path)
    hyper = shipped.card["training"]["hyperparameters"]
    assert hyper["beta_nll"] == 0.25 and hyper["clip_grad"] == 20.0  # the punet's default clip
    assert hyper["calibration"] == 2 and "2 slabs" in shipped.card["calibration"]["method"]
    # the temperature puts 95 % of the calibration voxels inside ±1.96 SD
    assert abs(shipped.card["metrics"]["calibration"]["coverage95_Ktrans"] - 0.95) < 0.01
    architecture = {k: v for k, v in shipped.card["architecture"].items() if k != "class"}
    assert architecture["tissue_gain"] == 10.0 and architecture["feature_norm"] is False
    net = ProbUNet(**architecture)
    net.load_state_dict(shipped.state_dict)  # strict
    assert net.tcn.tissue_gain == 10.0 and "tcn.norm.running_mean" not in shipped.state_dict
    assert "tcn.norm.running_mean" in ProbUNet(**punet_architecture()).state_dict()  # the default: on


def test_cnn_near_vessel_weight_multiplies_only_the_near_vessel_voxels():
    from bidsapp.nets.training import cnn, loop

    weight = torch.ones(2, 3, 4, 4)
    weight[:, 1, 0] = 0.0  # ve not in the loss on one row
    near = torch.zeros(2, 4, 4)
    near[0, 0, :2] = near[1, 3, 3] = 1.0
    batch = {"weight": weight, "near": near, "target": torch.full((2, 3, 4, 4), 0.1)}
    assert cnn.near_vessel_weighted(batch, 1.0) is batch
    weighted = cnn.near_vessel_weighted(batch, 4.0)["weight"]
    expected = weight * (1.0 + 3.0 * near[:, None])
    assert torch.equal(weighted, expected) and weighted[0, 1, 0, 0] == 0.0
    # the loss then weighs the near-vessel error 4x: error only there vs only at one other voxel
    pred = batch["target"].clone()
    pred[1, 2, 3, 3] += 0.05
    near_loss = loop.normalised_parameter_loss(pred, {**batch, "weight": weighted})
    pred = batch["target"].clone()
    pred[1, 2, 2, 2] += 0.05
    far_loss = loop.normalised_parameter_loss(pred, {**batch, "weight": weighted})
    assert torch.isclose(near_loss, 4.0 * far_loss)


def test_cnn_validation_reports_the_rmse_near_vessels():
    from bidsapp.nets.training import cnn

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.full((x.shape[0], 3, *x.shape[2:]), 0.02)

    target = torch.zeros(1, 3, 4, 4)
    target[0, 2, 0, 0] = 0.52  # a near-vessel voxel with vessel-like vp
    near = torch.zeros(1, 4, 4)
    near[0, 0, :2] = 1.0
    batch = {
        "input": torch.zeros(1, 2, 4, 4),
        "target": target,
        "weight": torch.ones(1, 3, 4, 4),
        "near": near,
    }
    metrics = cnn.evaluate(Constant(), [batch])
    np.testing.assert_allclose(metrics["rmse_near_vp"], np.sqrt((0.5**2 + 0.02**2) / 2), rtol=1e-5)
    np.testing.assert_allclose(metrics["rmse_vp"], np.sqrt((0.5**2 + 15 * 0.02**2) / 16), rtol=1e-5)


def test_log_variance_soft_floor_keeps_a_gradient_where_a_clamp_has_none():
    from bidsapp.nets.prob_unet import LOG_VAR_MIN, soft_floor

    raw = torch.tensor([LOG_VAR_MIN - 10.0, LOG_VAR_MIN, LOG_VAR_MIN + 10.0, 0.0], requires_grad=True)
    out = soft_floor(raw)
    assert bool((out > LOG_VAR_MIN).all())
    assert torch.allclose(out[2:], raw[2:], atol=1e-3)  # the identity well above the floor
    out.sum().backward()
    assert raw.grad[1] == 0.5 and raw.grad[0] > 0  # a clamp's gradient is 0 at and below the floor
    clamped = raw.detach().clone().requires_grad_(True)
    clamped.clamp(min=LOG_VAR_MIN).sum().backward()
    assert clamped.grad[0] == 0


def test_beta_nll_scales_each_voxel_by_its_detached_variance():
    from bidsapp.nets.training.punet import _nll_terms

    scales = torch.tensor([0.1, 0.3, 0.05]).view(1, 3, 1, 1)
    target = torch.full((1, 3, 2, 2), 0.2)
    batch = {"target": target, "weight": torch.ones(1, 3, 2, 2)}
    e = torch.tensor([0.5, -1.0, 2.0, 0.1]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    log_var = torch.tensor([-6.0, -2.0, 0.0, 1.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    grads = {}
    for beta in (0.0, 0.5, 1.0):
        mean = (target + e * scales).clone().requires_grad_(True)
        lv = log_var.clone().requires_grad_(True)
        mse, nll = _nll_terms(mean, lv, batch, scales, beta)
        nll.backward()
        grads[beta] = (mean.grad * scales * 4, lv.grad * 4)  # per voxel, in normalised units
        plain = 0.5 * (log_var + e**2 / torch.exp(log_var))
        weight = torch.exp(beta * log_var)
        assert torch.allclose(nll, (plain * weight).mean(dim=(0, 2, 3)).sum())
        assert torch.allclose(mse, (e**2).mean(dim=(0, 2, 3)).sum())
    sigma2 = torch.exp(log_var)
    assert torch.allclose(grads[0.0][0], e / sigma2, rtol=1e-4)  # plain NLL: e/σ²
    assert torch.allclose(grads[0.5][0], e / sigma2.sqrt(), rtol=1e-4)  # β = 0.5: e/σ
    assert torch.allclose(grads[1.0][0], e, rtol=1e-4)  # β = 1 (the default): e, as the MSE's
    assert torch.allclose(grads[0.5][1], 0.5 * (1 - e**2 / sigma2) * sigma2.sqrt(), rtol=1e-4, atol=1e-6)


def test_faithful_nll_trains_only_the_variance():
    from bidsapp.nets.training.punet import _nll_terms

    scales = torch.tensor([0.1, 0.3, 0.05]).view(1, 3, 1, 1)
    target = torch.full((1, 3, 2, 2), 0.2)
    batch = {"target": target, "weight": torch.ones(1, 3, 2, 2)}
    e = torch.tensor([0.5, -1.0, 2.0, 0.1]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    grads = {}
    for faithful in (False, True):
        mean = (target + e * scales).clone().requires_grad_(True)
        log_var = torch.full((1, 3, 2, 2), -1.0, requires_grad=True)
        mse, nll = _nll_terms(mean, log_var, batch, scales, 0.5, faithful)
        grads[faithful] = torch.autograd.grad(nll, [mean, log_var], retain_graph=True, allow_unused=True)
        (mse_grad,) = torch.autograd.grad(mse, [mean])
        assert torch.count_nonzero(mse_grad) == 12  # the MSE still trains the mean
    assert torch.count_nonzero(grads[False][0]) == 12
    assert grads[True][0] is None  # the NLL no longer reaches the mean
    assert torch.equal(grads[True][1], grads[False][1])  # and trains the variance as before


def test_ema_keeps_the_moving_average_of_the_weights():
    from argparse import Namespace

    from bidsapp.nets.training import loop

    class Scalar(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

    def run(ema):
        seen = []

        def loss_fn(net, batch):
            seen.append(float(net.w.detach()))  # the weights before this step
            return net.w * 1.0, {}

        args = Namespace(seed=0, pool=1, refresh=1, validation=1, epochs=1, steps=2, batch=1, lr=0.1)
        args.__dict__.update(patience=1, clip_grad=0.0, ema=ema, quiet=True)
        model, _ = loop.fit(Scalar(), loss_fn, lambda net, batches: {"loss": 0.0}, args, torch.device("cpu"))
        return float(model.w), seen

    raw, seen = run(0.0)  # the weights after the last (second) step
    after_first = seen[1]
    averaged, _ = run(0.75)
    assert raw < after_first < 0.0  # two steps down the constant gradient
    # AveragedModel copies the first step's weights, then w ← 0.75 w + 0.25 w_new
    assert np.isclose(averaged, 0.75 * after_first + 0.25 * raw, rtol=1e-6)
