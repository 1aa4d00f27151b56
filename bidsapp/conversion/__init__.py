"""DICOM to BIDS conversion for DCE-MRI studies (``dcequant-convert``).

Pipeline: :mod:`.discover` (find DICOM, read headers) → :mod:`.headers` (one record per
frame, classic or enhanced MR) → :mod:`.series` (acquisitions, slice × time stacks) →
:mod:`.classify` (roles, with :mod:`.rules` user overrides) → :mod:`.plan` (targets) →
:mod:`.convert` (pixels via :mod:`.pixels` or :mod:`.dcm2niix_runner`, geometry from
:mod:`.geometry`, timing from :mod:`.timing`, sidecars from :mod:`.sidecars`, log from
:mod:`.provenance`). See ``docs/conversion.md``.
"""

from .convert import ConversionResult, convert_dicom_study
from .plan import ConversionPlan, plan_conversion

__all__ = ["convert_dicom_study", "plan_conversion", "ConversionPlan", "ConversionResult"]
