"""Vendor-like conventions of the simulated DICOM (what differs between scanners).

* ``siemens``: timing of a dynamic frame only in AcquisitionTime/ContentTime (one
  AcquisitionNumber per frame), no TemporalPositionIdentifier, no rescaling (stored
  integers share one gain across the session), instances numbered frame by frame.
* ``ge``: TriggerTime (ms from the series start) per frame with
  TemporalPositionIdentifier and NumberOfTemporalPositions, the same AcquisitionTime
  on every frame, RescaleSlope/RescaleIntercept per series.
* ``philips``: TemporalPositionIdentifier + NumberOfTemporalPositions and AcquisitionTime
  per frame, RescaleSlope/RescaleIntercept plus the private MR scale slope
  (2005,100E) so that the floating-point value is ``(SV·RS + RI) / (RS·SS)``; instances
  numbered slice by slice.
"""

from dataclasses import dataclass

VENDORS = ("siemens", "ge", "philips")


@dataclass(frozen=True)
class VendorStyle:
    """DICOM conventions of one simulated vendor (see the module docstring for what differs)."""

    name: str
    manufacturer: str
    model: str
    software: str
    sequence_name: str
    image_type: tuple
    vfa_description: str  # formatted with angle=
    dce_description: str
    t1w_description: str  # formatted with label=
    timing: str  # "acquisition_time" | "trigger_time" | "temporal_position"
    rescale: bool
    private_scale: bool
    slice_major_numbering: bool


STYLES = {
    "siemens": VendorStyle(
        name="siemens",
        manufacturer="SIEMENS",
        model="Prisma",
        software="syngo MR E11",
        sequence_name="*fl3d1",
        image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
        vfa_description="t1_vibe_fa{angle:g}",
        dce_description="t1_vibe_dyn_DCE",
        t1w_description="t1_vibe_{label}",
        timing="acquisition_time",
        rescale=False,
        private_scale=False,
        slice_major_numbering=False,
    ),
    "ge": VendorStyle(
        name="ge",
        manufacturer="GE MEDICAL SYSTEMS",
        model="DISCOVERY MR750",
        software="DV26.0_R03",
        sequence_name="efgre3d",
        image_type=("ORIGINAL", "PRIMARY", "OTHER"),
        vfa_description="VFA 3D FSPGR FA{angle:g}",
        dce_description="DCE 3D FSPGR MPH",
        t1w_description="3D FSPGR {label}",
        timing="trigger_time",
        rescale=True,
        private_scale=False,
        slice_major_numbering=False,
    ),
    "philips": VendorStyle(
        name="philips",
        manufacturer="Philips Medical Systems",
        model="Ingenia",
        software="5.6.1",
        sequence_name="T1FFE",
        image_type=("ORIGINAL", "PRIMARY", "M_FFE", "M", "FFE"),
        vfa_description="T1_FFE_FA{angle:g}",
        dce_description="DCE_T1_FFE_dyn",
        t1w_description="T1_FFE_{label}",
        timing="temporal_position",
        rescale=True,
        private_scale=True,
        slice_major_numbering=True,
    ),
}


def vendor_style(name):
    """Return the :class:`VendorStyle` called ``name`` (ValueError naming the choices)."""
    try:
        return STYLES[str(name).lower()]
    except KeyError:
        raise ValueError(f"vendor {name!r} is not one of {', '.join(VENDORS)}") from None
