"""dcequant: a BIDS App for DCE-MRI quantification.

The public Python API lives at the top of this package. Names are resolved lazily
so that ``import bidsapp`` stays fast (torch is imported only when a fitting or
network function is first used).

Units everywhere: time in s, T1 in s, flip angles in degrees, relaxivity in /mM/s,
concentration in mM; Ktrans, kep and PS in 1/min, Fp in ml/100ml/min, ve and vp as
fractions.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:  # the lazy names, for type checkers and IDEs; nothing is imported at run time
    from .aif import (
        POPULATION_AIFS as POPULATION_AIFS,
    )
    from .aif import (
        AIFOptions as AIFOptions,
    )
    from .aif import (
        AIFResult as AIFResult,
    )
    from .aif import (
        aif_from_mask as aif_from_mask,
    )
    from .aif import (
        detect_aif as detect_aif,
    )
    from .aif import (
        population_aif as population_aif,
    )
    from .concentration import (
        ConcentrationResult as ConcentrationResult,
    )
    from .concentration import (
        concentration_to_signal as concentration_to_signal,
    )
    from .concentration import (
        signal_to_concentration as signal_to_concentration,
    )
    from .conversion import (
        ConversionPlan as ConversionPlan,
    )
    from .conversion import (
        ConversionResult as ConversionResult,
    )
    from .conversion import (
        convert_dicom_study as convert_dicom_study,
    )
    from .conversion import (
        plan_conversion as plan_conversion,
    )
    from .fitting import FitOptions as FitOptions
    from .fitting import fit_model as fit_model
    from .fitting import patlak_linear as patlak_linear
    from .models import model_curve as model_curve
    from .nets.dose_infer import synthesize_standard_dose as synthesize_standard_dose
    from .nets.infer import infer_parameters as infer_parameters
    from .registry import MODELS as MODELS
    from .registry import ModelSpec as ModelSpec
    from .registry import get_model as get_model
    from .relaxivity import relaxivity_for as relaxivity_for
    from .results import FitResult as FitResult
    from .simulate import (
        make_phantom as make_phantom,
    )
    from .simulate import (
        simulate_dose_pair as simulate_dose_pair,
    )
    from .simulate import (
        simulate_study as simulate_study,
    )
    from .simulate import (
        simulate_subject as simulate_subject,
    )
    from .spgr import spgr_signal as spgr_signal
    from .t1 import T1MapResult as T1MapResult
    from .t1 import compute_t1_map as compute_t1_map

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
    "AIFOptions": "bidsapp.aif",
    "aif_from_mask": "bidsapp.aif",
    "AIFResult": "bidsapp.aif",
    # kinetic models and fitting
    "MODELS": "bidsapp.registry",
    "ModelSpec": "bidsapp.registry",
    "get_model": "bidsapp.registry",
    "model_curve": "bidsapp.models",
    "fit_model": "bidsapp.fitting",
    "FitOptions": "bidsapp.fitting",
    "FitResult": "bidsapp.results",
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
    # gadolinium dose reduction
    "synthesize_standard_dose": "bidsapp.nets.dose_infer",
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
