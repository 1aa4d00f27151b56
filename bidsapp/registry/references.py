"""The one bibliography of dcequant: citation key -> :class:`Reference`.

Every citation in the methods text (``logs/CITATION.md``), the parameter sidecars and
the report is a key of :data:`REFERENCES`; the model and population-AIF registries
(:mod:`bidsapp.registry.kinetic`, :mod:`bidsapp.registry.aifs`) name their sources by
key, so one paper is cited the same way everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One bibliography entry: ``short`` for running text (``Tofts et al. 1999``), ``text`` in full."""

    short: str
    text: str


REFERENCES = {
    "nipype1": Reference(
        "Gorgolewski et al. 2011",
        "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible neuroimaging data processing "
        "framework in Python. Front Neuroinform 2011;5:13. doi:10.3389/fninf.2011.00013",
    ),
    "pybids": Reference(
        "Yarkoni et al. 2019",
        "Yarkoni T, et al. PyBIDS: Python tools for BIDS datasets. J Open Source Softw 2019;4(40):1294. "
        "doi:10.21105/joss.01294",
    ),
    "dcm2niix": Reference(
        "Li et al. 2016",
        "Li X, Morgan PS, Ashburner J, Smith J, Rorden C. The first step for neuroimaging data analysis: "
        "DICOM to NIfTI conversion. J Neurosci Methods 2016;264:47-56. doi:10.1016/j.jneumeth.2016.03.001",
    ),
    "deoni2003": Reference(
        "Deoni et al. 2003",
        "Deoni SCL, Rutt BK, Peters TM. Rapid combined T1 and T2 mapping using gradient recalled "
        "acquisition in the steady state. Magn Reson Med 2003;49:515-526. doi:10.1002/mrm.10407",
    ),
    "schabel2008": Reference(
        "Schabel & Parker 2008",
        "Schabel MC, Parker DL. Uncertainty and bias in contrast concentration measurements using "
        "spoiled gradient echo pulse sequences. Phys Med Biol 2008;53:2345-2373. "
        "doi:10.1088/0031-9155/53/9/010",
    ),
    "parker2006": Reference(
        "Parker et al. 2006",
        "Parker GJM, et al. Experimentally-derived functional form for a population-averaged "
        "high-temporal-resolution arterial input function for dynamic contrast-enhanced MRI. "
        "Magn Reson Med 2006;56:993-1000. doi:10.1002/mrm.21066",
    ),
    "georgiou2019": Reference(
        "Georgiou et al. 2019",
        "Georgiou L, Wilson DJ, Sharma N, Perren TJ, Buckley DL. A functional form for a representative "
        "individual arterial input function measured from a population using high temporal resolution DCE "
        "MRI. Magn Reson Med 2019;81:1955-1963. doi:10.1002/mrm.27524",
    ),
    "weinmann1984": Reference(
        "Weinmann et al. 1984",
        "Weinmann HJ, Laniado M, Mützel W. Pharmacokinetics of GdDTPA/dimeglumine after intravenous "
        "injection into healthy volunteers. Physiol Chem Phys Med NMR 1984;16:167-172.",
    ),
    "tofts1991": Reference(
        "Tofts & Kermode 1991",
        "Tofts PS, Kermode AG. Measurement of the blood-brain barrier permeability and leakage space using "
        "dynamic MR imaging. 1. Fundamental concepts. Magn Reson Med 1991;17:357-367. "
        "doi:10.1002/mrm.1910170208",
    ),
    "fritzhansen1996": Reference(
        "Fritz-Hansen et al. 1996",
        "Fritz-Hansen T, Rostrup E, Larsson HBW, Søndergaard L, Ring P, Henriksen O. Measurement of the "
        "arterial concentration of Gd-DTPA using MRI: a step toward quantitative perfusion imaging. "
        "Magn Reson Med 1996;36:225-231. doi:10.1002/mrm.1910360209",
    ),
    "mcgrath2009": Reference(
        "McGrath et al. 2009",
        "McGrath DM, Bradley DP, Tessier JL, Lacey T, Taylor CJ, Parker GJM. Comparison of model-based "
        "arterial input functions for dynamic contrast-enhanced MRI in tumor bearing rats. Magn Reson Med "
        "2009;61:1173-1184. doi:10.1002/mrm.21959",
    ),
    "tofts1999": Reference(
        "Tofts et al. 1999",
        "Tofts PS, et al. Estimating kinetic parameters from dynamic contrast-enhanced T1-weighted MRI "
        "of a diffusable tracer: standardized quantities and symbols. J Magn Reson Imaging "
        "1999;10:223-232. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S",
    ),
    "patlak1983": Reference(
        "Patlak et al. 1983",
        "Patlak CS, Blasberg RG, Fenstermacher JD. Graphical evaluation of blood-to-brain transfer "
        "constants from multiple-time uptake data. J Cereb Blood Flow Metab 1983;3:1-7. "
        "doi:10.1038/jcbfm.1983.1",
    ),
    "sourbron2013": Reference(
        "Sourbron & Buckley 2013",
        "Sourbron SP, Buckley DL. Classic models for dynamic contrast-enhanced MRI. NMR Biomed "
        "2013;26:1004-1027. doi:10.1002/nbm.2940",
    ),
    "simpleitk": Reference(
        "Lowekamp et al. 2013",
        "Lowekamp BC, Chen DT, Ibáñez L, Blezek D. The design of SimpleITK. Front Neuroinform "
        "2013;7:45. doi:10.3389/fninf.2013.00045",
    ),
    "power2012": Reference(
        "Power et al. 2012",
        "Power JD, Barnes KA, Snyder AZ, Schlaggar BL, Petersen SE. Spurious but systematic "
        "correlations in functional connectivity MRI networks arise from subject motion. NeuroImage "
        "2012;59:2142-2154. doi:10.1016/j.neuroimage.2011.10.018",
    ),
    "pinetz2024": Reference(
        "Pinetz et al. 2024",
        "Pinetz T, Kobler E, Haase R, Luetkens JA, Meetschen M, Haubold J, Deuschl C, Radbruch A, "
        "Deike K, Effland A. Gadolinium dose reduction for brain MRI using conditional deep learning. "
        "arXiv:2403.03539, 2024",
    ),
    "ulas2018": Reference(
        "Ulas et al. 2018",
        "Ulas C, Das D, Thrippleton MJ, Valdés Hernández MdC, Armitage PA, Makin SD, Wardlaw JM, Menze BH. "
        "Convolutional neural networks for direct inference of pharmacokinetic parameters: application to "
        "stroke dynamic contrast-enhanced MRI. Front Neurol 2019;9:1147. doi:10.3389/fneur.2018.01147",
    ),
    "lyoo2025": Reference(
        "Lyoo et al. 2025",
        "Lyoo Y, et al. (DCE-MRI pharmacokinetic maps with voxel-wise uncertainty from a temporal "
        "convolutional network and a probabilistic U-Net.) Eur Radiol 2025. doi:10.1007/s00330-025-11588-z",
    ),
    "kohl2018": Reference(
        "Kohl et al. 2018",
        "Kohl SAA, Romera-Paredes B, Meyer C, De Fauw J, Ledsam JR, Maier-Hein KH, Eslami SMA, Rezende DJ, "
        "Ronneberger O. A probabilistic U-Net for segmentation of ambiguous images. Advances in Neural "
        "Information Processing Systems 31 (NeurIPS 2018)",
    ),
}


def cite(keys):
    """Short citation of ``keys`` for running text: ``Tofts et al. 1999; Patlak et al. 1983``."""
    return "; ".join(REFERENCES[key].short for key in keys)
