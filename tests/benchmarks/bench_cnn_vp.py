"""Why the cnn's vp is worse than the fit's: measurements behind docs/networks.md (issue #14).

On the benchmark subjects of ``bench_nets.py`` (stream 2, SNR 10/15/20, tissue voxels):

1. the cnn with the **image AIF** (as the benchmark), the **true** plasma AIF, and the
   true AIF scaled to the image AIF's peak: does the AIF mismatch explain the error?
2. the vp error of the image-AIF run by distance (voxels, in-plane) to the nearest voxel
   with > 2 % vessel (artery or sinus; :func:`data.vessel_distance`): do the spatial
   pathways blur vessels into tissue?
3. on 6 training-stream slices (new noise, whole slices), each voxel class's share of
   the training vp loss ((error / 0.05)² summed over head voxels) and its vp RMSE and
   bias: do the vessels dominate the vp term?

Run: ``python tests/benchmarks/bench_cnn_vp.py [--weights DIR] [--subjects 2]`` (about
20 s of CPU).
"""

import argparse
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout

import torch

from bidsapp import infer_parameters
from bidsapp.nets import contract
from bidsapp.nets.infer import load_network
from bidsapp.nets.training import data
from bidsapp.simulate.kinetics import SessionInput
from bidsapp.simulate.tissues import CLASS_INDEX, TISSUE_CLASSES

DISTANCE_BINS = ((0, 1), (1, 2), (2, 3), (3, 6), (6, np.inf))  # inf: no vessel in the slice


def cnn_maps(conc, t, aif, mask, weights):
    """Ktrans (1/min) and vp maps of the cnn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = infer_parameters(
            conc, t, aif, mask=mask, net="cnn", device="cpu", weights_dir=weights
        ).params
    return params["Ktrans"], params["vp"]


def aif_and_distance(subjects, weights):
    """Parts 1 and 2 of the module docstring."""
    errors = {"image": [], "true": [], "true, image peak": []}
    distance, truth_vp = [], []
    for i in range(subjects):
        phantom, protocol, clean, rng = data.slab_case(0, data.BENCHMARK, i)
        tissue = data.tissue_mask(phantom)
        f = phantom.fractions
        dist = data.vessel_distance(phantom)
        for snr in data.EVAL_SNRS:
            conc = data.noisy_concentration(clean, rng, snr)
            image = data.image_aif(conc, f[..., CLASS_INDEX["artery"]], clean.t, phantom.hematocrit)
            on_grid, true_grid = contract.resample(image, clean.t), contract.resample(clean.aif, clean.t)
            print(
                f"  subject {i} SNR {snr:g} ({protocol.aif}): image/true AIF peak "
                f"{on_grid.max() / true_grid.max():.3f}, area {on_grid.sum() / true_grid.sum():.3f}"
            )
            aifs = {
                "image": image,
                "true": clean.aif,
                "true, image peak": clean.aif * on_grid.max() / true_grid.max(),
            }
            for name, aif in aifs.items():
                ktrans, vp = cnn_maps(conc, clean.t, aif, tissue, weights)
                errors[name].append(
                    (ktrans[tissue] - clean.truth[0][tissue], vp[tissue] - clean.truth[2][tissue])
                )
            distance.append(dist[tissue])
            truth_vp.append(clean.truth[2][tissue])
    print("\ncnn in tissue by AIF (subjects x SNR pooled)")
    for name, pairs in errors.items():
        ek = np.concatenate([p[0] for p in pairs])
        ev = np.concatenate([p[1] for p in pairs])
        print(
            f"  {name:17s} Ktrans RMSE {np.sqrt(np.mean(ek**2)):.4f} bias {ek.mean():+.4f}   vp RMSE "
            f"{np.sqrt(np.mean(ev**2)):.4f} bias {ev.mean():+.4f} median|e| {np.median(np.abs(ev)):.4f}"
        )
    ev = np.concatenate([p[1] for p in errors["image"]])
    d, tv = np.concatenate(distance), np.concatenate(truth_vp)
    print(f"\nvp error by distance to a vessel (image AIF; truth vp SD in tissue {tv.std():.4f})")
    for lo, hi in DISTANCE_BINS:
        s = (d >= lo) & (d < hi)
        print(
            f"  [{lo}, {hi}) voxels: n {s.sum():6d} RMSE {np.sqrt(np.mean(ev[s] ** 2)):.4f} bias "
            f"{ev[s].mean():+.4f} truth mean {tv[s].mean():.4f}"
        )


def loss_shares(weights, slices=6):
    """Part 3 of the module docstring."""
    model = load_network("cnn", weights)[0]
    rng = np.random.default_rng(5)
    sums = {}
    for i in range(slices):
        r = np.random.default_rng([0, data.TRAIN, 500 + i])
        protocol = data.draw_protocol(r)
        phantom = data.draw_phantom(r, protocol)
        clean = data.simulate_clean(phantom, protocol, SessionInput.draw(r, protocol))
        clean = replace(
            clean,
            signal=clean.signal[:, :, 0],
            t10=clean.t10[..., 0],
            truth=clean.truth[..., 0],
            head=clean.head[..., 0],
            artery=clean.artery[..., 0],
            near_vessel=clean.near_vessel[..., 0],
        )
        example = data.noisy_example(clean, rng, crop=None)
        with torch.no_grad():
            vp = model(torch.as_tensor(example["input"][None]))[0, data.PARAMS.index("vp")].numpy()
        for index, (name, _) in TISSUE_CLASSES.items():
            m = clean.head & (phantom.dseg[..., 0] == index)
            e = vp[m] - clean.truth[2][m]
            s = sums.setdefault(name, [0.0, 0, 0.0, 0.0])
            s[0] += float((e**2).sum())
            s[1] += int(m.sum())
            s[2] += float(e.sum())
            s[3] += float(clean.truth[2][m].sum())
    total = sum(s[0] for s in sums.values())
    print(f"\nTraining vp loss by class ({slices} training-stream slices, head voxels)")
    for name, (sse, n, bias, truth) in sums.items():
        if n:
            print(
                f"  {name:22s} voxels {n:6d} share of vp loss {sse / total:6.3f}  vp RMSE "
                f"{np.sqrt(sse / n):.4f} bias {bias / n:+.4f} truth mean {truth / n:.4f}"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help="directory of the cnn weights (default: the shipped ones)")
    parser.add_argument("--subjects", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    aif_and_distance(args.subjects, args.weights)
    loss_shares(args.weights)


if __name__ == "__main__":
    main()
