"""Acquisition protocol of a simulated DCE-MRI session (units: s, degrees, T, mmol/kg)."""

from dataclasses import dataclass, fields, replace

import numpy as np

from ..relaxivity import formulation_concentration

STANDARD_DOSE = 0.1  # mmol/kg, the dose the population AIFs were measured with


@dataclass(frozen=True)
class Protocol:
    """Everything the scanner and the injection decide.

    Sequences are spoiled gradient echo (SPGR). ``temporal_resolution`` is the frame
    spacing; frame ``n`` is acquired at ``n × temporal_resolution`` s. The bolus
    arrives at ``bolus_arrival`` s (default ``(baseline_frames − 0.5) × Δt``), jittered
    by ``arrival_jitter`` s SD per session, never before the last baseline frame
    (``(baseline_frames − 1) × Δt``). Per session the
    AIF amplitude is multiplied by a log-normal factor with SD ``aif_amplitude_cv``.
    ``snr`` is the mean baseline DCE signal of normal brain over the noise SD σ
    (σ is shared by every series of the session, as for one receiver chain).
    ``b1_amplitude``: maximum relative deviation of the transmit field (0 = uniform).
    ``motion``: maximum rigid displacement in mm and rotation in degrees (0 = none).
    The dose-pair T1-weighted volumes use ``t1w_flip_angle``/``t1w_tr`` and are
    acquired ``post_contrast_delay`` s after bolus arrival. ``patient_weight`` (kg)
    converts the dose to an injected volume for the headers.
    """

    field_strength: float = 3.0
    agent: str = "gadobutrol"
    dose: float = STANDARD_DOSE
    hematocrit: float = 0.45
    aif: str = "parker"
    aif_amplitude_cv: float = 0.1
    arrival_jitter: float = 1.0
    vfa_flip_angles: tuple = (2.0, 5.0, 10.0, 15.0)
    vfa_tr: float = 0.005
    echo_time: float = 0.0015
    dce_flip_angle: float = 15.0
    dce_tr: float = 0.005
    n_frames: int = 40
    temporal_resolution: float = 5.0
    baseline_frames: int = 5
    bolus_arrival: float | None = None
    snr: float = 30.0
    b1_amplitude: float = 0.0
    motion: float = 0.0
    t1w_flip_angle: float = 15.0
    t1w_tr: float = 0.008
    post_contrast_delay: float = 180.0
    fine_step: float = 0.5
    patient_weight: float = 70.0

    def __post_init__(self):
        """Sort the VFA flip angles (deg) and check every field (``ValueError`` naming the field)."""
        object.__setattr__(self, "vfa_flip_angles", tuple(sorted(float(a) for a in self.vfa_flip_angles)))
        checks = {
            "field_strength": self.field_strength > 0,
            "dose": self.dose > 0,
            "hematocrit": 0 < self.hematocrit < 1,
            "aif_amplitude_cv": self.aif_amplitude_cv >= 0,
            "arrival_jitter": self.arrival_jitter >= 0,
            "vfa_flip_angles": len(self.vfa_flip_angles) >= 2
            and all(0 < a < 90 for a in self.vfa_flip_angles)
            and len(set(self.vfa_flip_angles)) == len(self.vfa_flip_angles),
            "vfa_tr": self.vfa_tr > 0,
            "echo_time": 0 < self.echo_time < min(self.vfa_tr, self.dce_tr),
            "dce_flip_angle": 0 < self.dce_flip_angle < 90,
            "dce_tr": self.dce_tr > 0,
            "n_frames": int(self.n_frames) >= 2,
            "temporal_resolution": self.temporal_resolution > 0,
            "baseline_frames": 1 <= int(self.baseline_frames) < int(self.n_frames),
            "bolus_arrival": self.bolus_arrival is None
            or self.earliest_arrival
            <= self.bolus_arrival
            < (int(self.n_frames) - 1) * float(self.temporal_resolution),
            "snr": self.snr > 0,
            "b1_amplitude": 0 <= self.b1_amplitude < 0.5,
            "motion": self.motion >= 0,
            "t1w_flip_angle": 0 < self.t1w_flip_angle < 90,
            "t1w_tr": self.t1w_tr > 0,
            "post_contrast_delay": self.post_contrast_delay > 0,
            "fine_step": self.fine_step > 0,
            "patient_weight": self.patient_weight > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            name = bad[0]
            raise ValueError(f"Protocol.{name} = {getattr(self, name)!r} is out of range")

    def replace(self, **changes):
        """Copy with ``changes`` (validated); unknown names raise ValueError."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown Protocol field(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def injected_volume_ml(self, dose_fraction=1.0):
        """Injected volume (ml) of ``dose_fraction`` × the dose for ``patient_weight``."""
        return dose_fraction * self.dose * self.patient_weight / formulation_concentration(self.agent)

    @property
    def frame_times(self):
        """Acquisition time of every DCE frame (s, first frame at 0)."""
        return np.arange(int(self.n_frames)) * float(self.temporal_resolution)

    @property
    def nominal_arrival(self):
        """Bolus arrival time without jitter (s)."""
        if self.bolus_arrival is not None:
            return float(self.bolus_arrival)
        return (int(self.baseline_frames) - 0.5) * float(self.temporal_resolution)

    @property
    def earliest_arrival(self):
        """Arrival cannot precede the last baseline frame (s)."""
        return (int(self.baseline_frames) - 1) * float(self.temporal_resolution)
