"""A small synthetic DCE concentration volume with known arterial voxels."""

import numpy as np

from bidsapp import population_aif

HCT = 0.45


def tofts_tissue(plasma, t, ktrans_per_min, ve):
    """Standard Tofts tissue curve by discrete convolution (test-only helper)."""
    dt = t[1] - t[0]
    kep = ktrans_per_min / 60.0 / ve
    kernel = (ktrans_per_min / 60.0) * np.exp(-kep * t)
    return np.convolve(plasma, kernel)[: t.size] * dt


def synthetic_volume(seed=0, noise_sd=0.05, artery_scale=1.0):
    """Return (concentration [x,y,z,t], t, artery mask, vein mask, true blood AIF).

    16×16×4 voxels, 60 frames at 4 s: a feeding artery (Parker blood curve, bolus at
    20 s, 4 voxels per slice), a vein/sinus (the same bolus delayed 12 s and dispersed
    by a 20 s mean-transit exponential, 9 voxels per slice), Tofts tissue elsewhere
    (Ktrans 0.05-0.3 /min, ve 0.2-0.5) and Gaussian noise of SD ``noise_sd`` mM.
    ``artery_scale`` scales the arterial curve (partial volume); the returned true blood
    AIF is the scaled curve.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(60) * 4.0
    blood = population_aif("parker", t, bolus_arrival=20.0, hematocrit=0.0) * artery_scale
    plasma = blood / (1 - HCT)
    fine = np.arange(0.0, t[-1] + 0.5, 0.5)
    fine_blood = population_aif("parker", fine, bolus_arrival=32.0, hematocrit=0.0)
    kernel = np.exp(-fine / 20.0)
    vein_fine = np.convolve(fine_blood, kernel / kernel.sum())[: fine.size]
    vein = np.interp(t, fine, vein_fine) * 1.1
    shape = (16, 16, 4)
    conc = np.empty(shape + (t.size,))
    ktrans = rng.uniform(0.05, 0.3, shape)
    ve = rng.uniform(0.2, 0.5, shape)
    for index in np.ndindex(shape):
        conc[index] = tofts_tissue(plasma, t, ktrans[index], ve[index])
    artery = np.zeros(shape, dtype=bool)
    artery[3:5, 3:5, :] = True
    vein_mask = np.zeros(shape, dtype=bool)
    vein_mask[10:13, 10:13, :] = True
    conc[artery] = blood
    conc[vein_mask] = vein
    conc += rng.normal(0.0, noise_sd, conc.shape)
    return conc, t, artery, vein_mask, blood
