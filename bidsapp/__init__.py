"""dcequant: a BIDS App for DCE-MRI quantification.

The public Python API lives at the top of this package. Names are resolved lazily
so that ``import bidsapp`` stays fast (torch is imported only when a fitting or
network function is first used).

Units everywhere: time in s, T1 in s, flip angles in degrees, relaxivity in /mM/s,
concentration in mM; Ktrans, kep and PS in 1/min, Fp in ml/100ml/min, ve and vp as
fractions.
"""

from importlib import import_module

from ._version import __version__

#: public name -> module that defines it
_EXPORTS = {
    # signal physics
    "spgr_signal": "bidsapp.spgr",
    "compute_t1_map": "bidsapp.t1",
    "T1MapResult": "bidsapp.t1",
    "signal_to_concentration": "bidsapp.concentration",
    "ConcentrationResult": "bidsapp.concentration",
    "concentration_to_signal": "bidsapp.concentration",
    "relaxivity_for": "bidsapp.relaxivity",
    # arterial input functions
    "population_aif": "bidsapp.aif",
    "POPULATION_AIFS": "bidsapp.aif",
    "detect_aif": "bidsapp.aif",
    "aif_from_mask": "bidsapp.aif",
    "AIFResult": "bidsapp.aif",
    # kinetic models and fitting
    "MODELS": "bidsapp.models",
    "model_curve": "bidsapp.models",
    "fit_model": "bidsapp.fitting",
    "FitResult": "bidsapp.fitting",
    "patlak_linear": "bidsapp.fitting",
    # pretrained networks
    "infer_parameters": "bidsapp.nets.infer",
    # synthetic studies
    "simulate_study": "bidsapp.simulate",
    "make_phantom": "bidsapp.simulate",
    "simulate_subject": "bidsapp.simulate",
    "simulate_dose_pair": "bidsapp.simulate",
    # DICOM to BIDS
    "convert_dicom_study": "bidsapp.conversion",
    "plan_conversion": "bidsapp.conversion",
    "ConversionPlan": "bidsapp.conversion",
    "ConversionResult": "bidsapp.conversion",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'bidsapp' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
