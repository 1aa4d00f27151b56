"""Cohort design: subjects, sessions, group labels with a known effect, random streams.

Subjects are split as evenly as possible between two group labels (default tumour
``grade`` ``low``/``high``), in an order shuffled by the seed. Subjects of the second
label have the subject-level log-medians of tumour-rim ``Ktrans`` and ``vp`` shifted
by ``effect_size`` prior SDs, so the subject-level log values differ by Cohen's
d = ``effect_size`` and the expected AUROC of a subject-level classifier on either is
``Φ(d / √2)``. Sessions of one subject share the truth (test–retest): each session has
its own random stream for the AIF amplitude/arrival, B1 pattern, motion and noise.

Random streams are ``numpy.random.SeedSequence(seed, spawn_key=...)`` children, so any
subject or session can be regenerated alone and results do not depend on run order.
"""

import math
from dataclasses import dataclass

import numpy as np

GROUP_EFFECT_TARGETS = (("tumour_rim", "Ktrans"), ("tumour_rim", "vp"))


@dataclass(frozen=True)
class Cohort:
    """Design of a simulated study."""

    n_subjects: int = 2
    n_sessions: int = 1
    seed: int = 0
    effect_size: float = 1.0
    group_column: str = "grade"
    group_labels: tuple = ("low", "high")

    def __post_init__(self):
        """Check the cohort settings (``ValueError`` naming the field)."""
        if int(self.n_subjects) < 1:
            raise ValueError(f"n_subjects {self.n_subjects} must be at least 1")
        if int(self.n_sessions) < 1:
            raise ValueError(f"n_sessions {self.n_sessions} must be at least 1")
        if int(self.seed) < 0:
            raise ValueError(f"seed {self.seed} must be a non-negative integer")
        if len(self.group_labels) != 2 or len(set(self.group_labels)) != 2:
            raise ValueError(f"group_labels {self.group_labels} must be two different labels")
        if not str(self.group_column).isidentifier():
            raise ValueError(f"group_column {self.group_column!r} must be a plain column name")
        if not math.isfinite(self.effect_size):
            raise ValueError(f"effect_size {self.effect_size} must be finite")

    @property
    def subjects(self):
        """Subject labels ``01``, ``02``, … (zero-padded to at least two digits)."""
        width = max(2, len(str(self.n_subjects)))
        return [f"{i:0{width}d}" for i in range(1, self.n_subjects + 1)]

    @property
    def sessions(self):
        """Session labels, or ``[None]`` for a single-session study (no ``ses-`` level)."""
        if self.n_sessions == 1:
            return [None]
        width = max(2, len(str(self.n_sessions)))
        return [f"{i:0{width}d}" for i in range(1, self.n_sessions + 1)]

    def groups(self):
        """``{subject: label}``, balanced, order shuffled by the seed."""
        n = self.n_subjects
        labels = [self.group_labels[i * 2 // n] if n > 1 else self.group_labels[0] for i in range(n)]
        order = np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(0,))).permutation(n)
        return {subject: labels[k] for subject, k in zip(self.subjects, order, strict=True)}

    def shifts(self, label):
        """``{(tissue, parameter): d}`` applied to subjects with ``label``."""
        if label not in self.group_labels:
            raise ValueError(f"group label {label!r} is not one of {self.group_labels}")
        if label == self.group_labels[1]:
            return {target: float(self.effect_size) for target in GROUP_EFFECT_TARGETS}
        return {}

    def subject_rng(self, index):
        """Random stream of the subject truth (0-based ``index``)."""
        return np.random.default_rng(np.random.SeedSequence(int(self.seed), spawn_key=(1, index)))

    def session_rng(self, index, session_index):
        """Random stream of one session's acquisition of subject ``index``."""
        return np.random.default_rng(
            np.random.SeedSequence(int(self.seed), spawn_key=(2, index, session_index))
        )

    def expected_auroc(self):
        """AUROC of the subject-level log Ktrans (or vp) for the second label: Φ(d/√2)."""
        return 0.5 * (1.0 + math.erf(self.effect_size / 2.0))
