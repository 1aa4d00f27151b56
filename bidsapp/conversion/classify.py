"""Decide the role of every acquisition: dynamic, flip-angle set, anatomy, B1 map, other.

Roles are decided from sequence parameters, not from matrix size alone (rules checked
in this order; user rules from :mod:`.rules` override the result):

* ``TB1map`` — ImageType names a B1 / flip-angle map, or the description / sequence
  name does (``b1map``, ``tfl_b1``, ``flip angle map``, ``AFI``, ``DREAM``) in a series
  with a single acquisition.
* ``dce`` — at least :data:`MIN_DYNAMIC_VOLUMES` volumes per slice position from a
  gradient-echo sequence with TR < :data:`MAX_SPGR_TR_S`. Longer-TR dynamics (DSC,
  fMRI) are ``other``. Of a multi-echo dynamic series only the shortest echo is
  ``dce``. With several dynamic series the one with the larger contrast dose (else more
  volumes, else the later one) is ``dce`` and the next one ``dce-lowdose``.
* ``FLAIR`` — inversion recovery with TI ≥ 1.5 s, or FLAIR in the description;
  ``T2w`` — TR ≥ 1.5 s and TE ≥ 60 ms; ``T1w`` — spin echo with TR < 1 s and TE < 30 ms,
  or inversion-prepared gradient echo (MPRAGE, TI 0.3–1.5 s).
* ``vfa`` — single-volume spoiled gradient echo (TR < 0.1 s) acquisitions that share
  matrix, orientation, pixel spacing, slice positions, TR, TE and sequence type and
  differ in flip angle (≥ 2 angles), whether stored as one series per angle or one
  series holding all angles. The set sharing the dynamic's grid wins, then the set with
  most angles. A lone spoiled gradient echo is ``T1w``.
* ``other`` — derived images (ImageType DERIVED: subtractions, reformats), phase /
  real / imaginary images, localizers, pieces of a series that splits into several
  geometries without forming a flip-angle set, and everything else (listed in the plan
  and provenance, not converted).

T1-weighted anatomy acquired after the dynamic series started (or, without one, with
ContrastBolusAgent set) gets the BIDS ``ce-<agent>`` entity; of several such images with
different contrast doses the smallest is ``acq-lowdose`` and the largest
``acq-fulldose`` (a low-dose / standard-dose pre/post set).
"""

import re
from dataclasses import dataclass, field

import numpy as np

from . import geometry
from .rules import apply_rules

MIN_DYNAMIC_VOLUMES = 3
MAX_SPGR_TR_S = 0.1
B1_IMAGE_TYPES = {"B1", "B1MAP", "B1_MAP", "FLIP_ANGLE_MAP", "FLIP ANGLE MAP", "FA_MAP", "RFMAP", "TB1MAP"}
B1_TEXT = re.compile(r"b1[ _-]?map|tfl_?b1|\bb1\b|flip[ _-]?angle[ _-]?map|\bafi\b|\bdream\b", re.IGNORECASE)
FLAIR_TEXT = re.compile(r"flair", re.IGNORECASE)
LOCALIZER_TEXT = re.compile(r"locali[sz]er|scout|survey|aahead", re.IGNORECASE)


@dataclass
class Assignment:
    """Role of one acquisition in the conversion plan."""

    acq: object
    role: str
    reason: str
    decided_by: str = "auto"  # "auto" or "rule <name>"
    entities: dict = field(default_factory=dict)  # extra BIDS entities (acq, ce, run)
    sidecar: dict = field(default_factory=dict)  # user-rule sidecar fields
    problem: str | None = None  # why it cannot be converted
    flip_index: int | None = None  # 1-based, ascending angle (vfa only)

    @property
    def convertible(self):
        """Whether the acquisition has a role and no problem that prevents its conversion."""
        return self.problem is None and self.role not in ("other", "ignore")


def n_volumes(acq):
    """Volumes per slice position (from the stack, else estimated from the frames)."""
    if acq.stack is not None:
        return acq.stack.n_volumes
    if acq.first.orientation is not None and all(f.position is not None for f in acq.frames):
        locs = geometry.slice_locations([f.position for f in acq.frames], acq.first.orientation)
        return max(1, round(len(acq.frames) / len(geometry.unique_locations(locs))))
    return len(acq.frames)


def n_slices(acq):
    """Return the slice positions of ``acq`` (None without a stack)."""
    return acq.stack.n_slices if acq.stack is not None else None


def _text(frame):
    return " ".join([frame.series_description, frame.protocol_name, frame.sequence_name])


def _is_gradient_echo(frame):
    """ScanningSequence GR (or EP without SE); unknown counts as gradient echo."""
    seq = frame.scanning_sequence.upper().split("\\") if frame.scanning_sequence else []
    return not seq or "GR" in seq or ("EP" in seq and "SE" not in seq)


def _is_b1(acq, series_sizes):
    f = acq.first
    if B1_IMAGE_TYPES & set(f.image_type):
        return True
    return bool(B1_TEXT.search(_text(f))) and series_sizes[acq.series_uid] == 1


def automatic_role(acq, series_sizes):
    """``(role, reason)`` from the acquisition's own parameters (before VFA grouping).

    Single-volume spoiled gradient echoes come back as ``"spgr"``, resolved later to
    ``vfa`` or ``T1w`` by :func:`classify`.
    """
    f = acq.first
    tr, te, ti = f.repetition_time, f.echo_time, f.inversion_time
    nvol = n_volumes(acq)
    if _is_b1(acq, series_sizes):
        return "TB1map", "B1 map (ImageType/description)"
    if f.image_type[:1] == ("DERIVED",):
        return "other", f"derived image ({chr(92).join(f.image_type)}), e.g. subtraction or reformat"
    if {"P", "PHASE", "R", "REAL", "I", "IMAGINARY"} & set(f.image_type):
        return "other", f"phase/real/imaginary image ({chr(92).join(f.image_type)})"
    if "LOCALIZER" in f.image_type or LOCALIZER_TEXT.search(_text(f)):
        return "other", "localizer"
    if nvol >= MIN_DYNAMIC_VOLUMES:
        if _is_gradient_echo(f) and (tr is None or tr < MAX_SPGR_TR_S):
            return "dce", f"{nvol} volumes per slice, gradient echo TR {_ms(tr)}"
        return (
            "other",
            f"{nvol} volumes but TR {_ms(tr)} / {f.scanning_sequence or '?'} is not a DCE sequence",
        )
    if (ti is not None and ti >= 1.5) or FLAIR_TEXT.search(_text(f)):
        return "FLAIR", f"inversion recovery TI {_ms(ti)}"
    if tr is not None and te is not None and tr >= 1.5 and te >= 0.06:
        return "T2w", f"TR {_ms(tr)}, TE {_ms(te)}"
    seq = f.scanning_sequence.upper().split("\\")
    if "IR" in seq and ti is not None and 0.3 <= ti < 1.5:
        return "T1w", f"inversion-prepared, TI {_ms(ti)}"
    if "SE" in seq and tr is not None and te is not None and tr < 1.0 and te < 0.03:
        return "T1w", f"spin echo TR {_ms(tr)}, TE {_ms(te)}"
    if _is_gradient_echo(f) and (tr is None or tr < MAX_SPGR_TR_S):
        return "spgr", f"single-volume gradient echo TR {_ms(tr)}"
    return "other", f"no DCE role (TR {_ms(tr)}, TE {_ms(te)}, {f.scanning_sequence or 'sequence ?'})"


def _ms(seconds):
    return "?" if seconds is None else f"{seconds * 1e3:g} ms"


def vfa_key(acq):
    """Return what flip-angle images of one set must share (None when unusable)."""
    f, stack = acq.first, acq.stack
    if stack is None or f.flip_angle is None or f.repetition_time is None:
        return None
    return (
        stack.grid.shape,
        tuple(np.round(stack.grid.affine, 2).ravel()),
        round(f.repetition_time, 6),
        None if f.echo_time is None else round(f.echo_time, 6),
        f.scanning_sequence,
        f.mr_acquisition_type,
    )


def _same_protocol(acq, other):
    """Return the TR, TE, matrix and orientation key (for acquisitions without a stack)."""
    f, g = acq.first, other.first
    return (f.repetition_time, f.echo_time, f.rows, f.columns, f.orientation) == (
        g.repetition_time,
        g.echo_time,
        g.rows,
        g.columns,
        g.orientation,
    )


def _grid_key(acq):
    stack = acq.stack
    return None if stack is None else (stack.grid.shape, tuple(np.round(stack.grid.affine, 2).ravel()))


def _dose(acq):
    c = acq.first.contrast
    return c.get("ContrastBolusTotalDose", c.get("ContrastBolusVolume"))


def _pick_dynamics(assignments):
    dyn = [a for a in assignments if a.role == "dce" and a.decided_by == "auto"]
    first_echo = {}
    for a in sorted(dyn, key=lambda a: a.acq.first.echo_time or 0.0):
        if a.acq.series_uid in first_echo:  # later echo (or other image) of the same dynamic series
            a.role = "other"
            a.reason = (
                f"{a.reason}; not the shortest echo of its series ({first_echo[a.acq.series_uid].acq.label})"
            )
        else:
            first_echo[a.acq.series_uid] = a
    dyn = list(first_echo.values())
    if len(dyn) < 2:
        return
    doses = [_dose(a.acq) for a in dyn]
    if all(d is not None for d in doses) and len(set(doses)) > 1:
        ranked = sorted(dyn, key=lambda a: -_dose(a.acq))
        why = "larger contrast dose"
    else:
        ranked = sorted(dyn, key=lambda a: (-n_volumes(a.acq), -(a.acq.earliest_clock() or 0)))
        why = "more volumes / acquired later"
    for a in ranked[1:2]:
        a.role, a.reason = "dce-lowdose", f"second dynamic series ({ranked[0].acq.label} has {why})"
        a.entities["acq"] = "lowdose"
    for a in ranked[2:]:
        a.role, a.reason = "other", "third or later dynamic series"


def _resolve_vfa(assignments, series_sizes):
    dce = next((a for a in assignments if a.role == "dce"), None)
    dce_grid = _grid_key(dce.acq) if dce is not None else None
    candidates = [a for a in assignments if a.role in ("spgr", "vfa")]
    clusters = {}
    for a in candidates:
        key = vfa_key(a.acq)
        if key is None:
            continue
        clusters.setdefault(key, []).append(a)

    def angles(members):
        return {round(m.acq.first.flip_angle, 2) for m in members}

    forced = [a for a in candidates if a.role == "vfa"]
    if forced:
        forced_keys = {vfa_key(a.acq) for a in forced}
        chosen_key = max(forced_keys - {None}, key=lambda k: len(angles(clusters[k])), default=None)
    else:
        usable = [k for k, members in clusters.items() if len(angles(members)) >= 2]
        chosen_key = max(
            usable, key=lambda k: ((k[0], k[1]) == dce_grid, len(angles(clusters[k]))), default=None
        )
    chosen = clusters.get(chosen_key, [])
    by_angle = {}
    for a in sorted(chosen, key=lambda m: (m.acq.first.series_number or 0, m.acq.earliest_clock() or 0)):
        by_angle.setdefault(round(a.acq.first.flip_angle, 2), []).append(a)
    for index, angle in enumerate(sorted(by_angle), start=1):
        keep, *repeats = by_angle[angle]
        keep.role, keep.flip_index = "vfa", index
        if keep.decided_by == "auto":
            keep.reason = f"flip angle {angle:g}° of a {len(by_angle)}-angle set"
        for r in repeats:
            r.role, r.reason = "other", f"repeat of flip angle {angle:g}° ({keep.acq.label} used)"
    chosen_ids = {id(a) for a in chosen}
    for a in candidates:
        if id(a) in chosen_ids:
            continue
        f = a.acq.first
        missing = [
            n for n, v in (("FlipAngle", f.flip_angle), ("RepetitionTime", f.repetition_time)) if v is None
        ]
        same_grid = chosen_key is not None and _grid_key(a.acq) == (chosen_key[0], chosen_key[1])
        if a.acq.stack is None and chosen and _same_protocol(a.acq, chosen[0].acq):
            a.role = "vfa"  # a flip-angle image whose frames could not be stacked; problem set later
        elif a.role == "vfa":
            a.problem = (
                f"{', '.join(missing)} missing"
                if missing
                else "does not share grid, TR, TE and sequence with the other flip-angle images"
            )
        elif missing and same_grid:
            a.role, a.problem = "vfa", f"{', '.join(missing)} missing; cannot be used as a flip-angle image"
        elif series_sizes[a.acq.series_uid] > 1:
            a.role = "other"
            a.reason += "; one of several geometries/parameter sets in its series, not a flip-angle set"
        else:
            a.role = "T1w"
            a.reason += "; no flip-angle partners, anatomical T1w"


def _contrast_label(assignments):
    """BIDS ``ce`` label: the agent named in the headers (alphanumeric), else ``contrast``."""
    for a in assignments:
        agent = a.acq.first.contrast.get("ContrastBolusAgent")
        if agent:
            label = re.sub(r"[^A-Za-z0-9]", "", agent)
            if label:
                return label
    return "contrast"


def _post_contrast(assignments):
    """Mark post-contrast T1w (``ce`` entity) and name a low/standard dose pair (``acq``).

    Post-contrast: acquired after the dynamic series started, or — without a dynamic
    series — carrying ContrastBolusAgent in the header. Two or more post-contrast T1w
    with different ContrastBolusTotalDose/Volume: the smallest dose is ``acq-lowdose``
    and the largest ``acq-fulldose``.
    """
    dce = next((a for a in assignments if a.role == "dce"), None)
    start = dce.acq.earliest_clock() if dce is not None else None
    label = _contrast_label(assignments)
    post = []
    for a in assignments:
        if a.role != "T1w" or "ce" in a.entities or a.decided_by != "auto":
            continue
        clock = a.acq.earliest_clock()
        if start is not None and clock is not None:
            after = clock > start
            why = "acquired after the dynamic series started"
        else:
            after = bool(a.acq.first.contrast.get("ContrastBolusAgent"))
            why = "ContrastBolusAgent in the header"
        if after:
            a.entities["ce"] = label
            a.reason += f"; post-contrast ({why})"
            post.append(a)
    doses = [_dose(a.acq) for a in post]
    if len(post) >= 2 and all(d is not None for d in doses) and len(set(doses)) > 1:
        ranked = sorted(post, key=lambda a: _dose(a.acq))
        for a, acq in ((ranked[0], "lowdose"), (ranked[-1], "fulldose")):
            a.entities = {"acq": acq, **a.entities}
            a.reason += f"; {acq} of a dose pair (ContrastBolus dose {_dose(a.acq):g})"


def _number_runs(assignments):
    groups = {}
    for a in assignments:
        if a.convertible and a.role in ("T1w", "T2w", "FLAIR", "TB1map"):
            groups.setdefault((a.role, tuple(sorted(a.entities.items()))), []).append(a)
    for members in groups.values():
        if len(members) > 1:
            for run, a in enumerate(
                sorted(members, key=lambda m: (m.acq.first.series_number or 0, m.acq.label)), 1
            ):
                a.entities["run"] = run


def rule_fields(acq, auto_role):
    """Field lookup for user rules: DICOM keywords of the first header plus derived fields."""
    derived = {"NumberOfVolumes": n_volumes(acq), "NumberOfSlices": n_slices(acq), "AutoRole": auto_role}

    def lookup(key):
        if key in derived:
            return derived[key]
        return getattr(acq.first.dataset, key, None)

    return lookup


def classify(acquisitions, rules=()):
    """Return one :class:`Assignment` per acquisition."""
    sizes = {}
    for acq in acquisitions:
        sizes[acq.series_uid] = sizes.get(acq.series_uid, 0) + 1
    assignments = []
    for acq in acquisitions:
        role, reason = automatic_role(acq, sizes)
        public_auto = "vfa" if role == "spgr" else role
        rule_role, rule_name, sidecar = apply_rules(rules, rule_fields(acq, public_auto))
        a = Assignment(acq=acq, role=role, reason=reason, sidecar=sidecar)
        if rule_role is not None:
            a.role, a.decided_by, a.reason = rule_role, f"rule {rule_name}", f"user rule {rule_name}"
            if rule_role == "dce-lowdose":
                a.entities["acq"] = "lowdose"
        assignments.append(a)
    _pick_dynamics(assignments)
    _resolve_vfa(assignments, sizes)
    _post_contrast(assignments)
    for a in assignments:
        if a.acq.error and a.role not in ("ignore",) and a.problem is None:
            a.problem = a.acq.error
    _number_runs(assignments)
    return assignments
