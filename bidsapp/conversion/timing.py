"""Frame timing of a dynamic series: which DICOM field, and seconds from the first frame.

Vendors put the time of a dynamic frame in different fields (GE: TriggerTime, with one
AcquisitionTime for the whole series; Siemens: AcquisitionTime per frame; Philips:
TemporalPositionIdentifier plus per-frame times; enhanced MR: FrameAcquisitionDateTime).
The source is chosen per series by this fixed precedence — the first field that is
present in every frame *and* separates the frames acquired at one slice position wins:

1. ``TriggerTime`` (0018,1060), ms;
2. ``AcquisitionTime`` (0008,0032) (enhanced MR: FrameAcquisitionDateTime), with
   AcquisitionDate when every frame has it and it changes within the series, otherwise
   unwrapped across midnight;
3. ``ContentTime`` (0008,0033) (enhanced MR: FrameReferenceDateTime), likewise;
4. ``TemporalPositionIdentifier`` (0020,0100) × ``TemporalResolution`` (0020,0110, ms).

The volume time is the earliest frame time among its slices (the onset of the volume,
as BIDS VolumeTiming requires), and ``VolumeTiming`` is relative to the first volume,
so the first entry is 0. The order of volumes is taken from TemporalPositionIdentifier
when it is present and separates frames, otherwise from the chosen time.

Midnight: clock times are seconds since midnight. Without dates, a series that crosses
midnight shows one gap of nearly a day on the 24-h circle; :func:`unwrap_midnight`
puts the frames after the largest circular gap onto the next day.
"""

import numpy as np

DAY_S = 86400.0
TIMING_PRECEDENCE = ("TriggerTime", "AcquisitionTime", "ContentTime", "TemporalPositionIdentifier")
#: two frame times closer than this (s) are the same time
TIME_TOLERANCE_S = 1e-4


class TimingError(ValueError):
    """A dynamic series whose frame timing cannot be established."""


def unwrap_midnight(times):
    """Seconds-since-midnight values made monotonic across one midnight crossing.

    The values are placed on the 24-h circle; the largest gap between neighbours on
    the circle is where the series did *not* run, so every time after that gap that is
    numerically smaller than the gap's start is moved to the next day (+86400 s).
    """
    t = np.asarray(times, dtype=float)
    if t.size < 2:
        return t
    order = np.sort(np.unique(t))
    gaps = np.diff(np.concatenate([order, [order[0] + DAY_S]]))
    largest = int(np.argmax(gaps))
    if largest == len(order) - 1:  # the widest gap already spans midnight: no wrap
        return t
    start = order[largest + 1]  # first time after the widest gap = series start
    return np.where(t < start, t + DAY_S, t)


def _clock(frames, time_attr, date_attr):
    times = [getattr(f, time_attr) for f in frames]
    if any(v is None for v in times):
        return None
    dates = [getattr(f, date_attr) for f in frames]
    # dates are trusted only when they change (some exports keep the study date after midnight)
    if all(d is not None for d in dates) and len(set(dates)) > 1:
        base = min(dates)
        return np.array([(d - base) * DAY_S + t for d, t in zip(dates, times, strict=True)])
    return unwrap_midnight(times)


def frame_times(frames, source):
    """Time (s) of every frame from ``source`` (one of :data:`TIMING_PRECEDENCE`), or None."""
    if source == "TriggerTime":
        values = [f.trigger_time for f in frames]
        return None if any(v is None for v in values) else np.array(values, dtype=float)
    if source == "AcquisitionTime":
        return _clock(frames, "acquisition_time", "acquisition_date")
    if source == "ContentTime":
        return _clock(frames, "content_time", "content_date")
    if source == "TemporalPositionIdentifier":
        tpi = [f.temporal_position for f in frames]
        res = {f.temporal_resolution for f in frames}
        if any(v is None for v in tpi) or len(res) != 1 or None in res or not next(iter(res)):
            return None
        return (np.array(tpi, dtype=float) - min(tpi)) * next(iter(res))
    raise ValueError(f"unknown timing source {source!r}; expected one of {TIMING_PRECEDENCE}")


def separates(values, slice_index):
    """Return True when ``values`` differ between all frames that share a slice index."""
    values = np.asarray(values, dtype=float)
    for k in np.unique(slice_index):
        v = np.sort(values[slice_index == k])
        if v.size > 1 and np.min(np.diff(v)) <= TIME_TOLERANCE_S:
            return False
    return True


def choose_timing(frames, slice_index):
    """``(source, times)`` by the module's precedence, or ``(None, None)``."""
    for source in TIMING_PRECEDENCE:
        times = frame_times(frames, source)
        if times is not None and separates(times, slice_index):
            return source, times
    return None, None


def temporal_order_key(frames, slice_index):
    """Per-frame sort key giving the order of volumes, and the name of its field.

    TemporalPositionIdentifier when present and separating, else the chosen time,
    else InstanceNumber; ``(None, None)`` when nothing separates the frames.
    """
    tpi = [f.temporal_position for f in frames]
    if all(v is not None for v in tpi) and separates(tpi, slice_index):
        return np.array(tpi, dtype=float), "TemporalPositionIdentifier"
    source, times = choose_timing(frames, slice_index)
    if source is not None:
        return times, source
    inst = [f.instance_number for f in frames]
    if all(v is not None for v in inst) and separates(inst, slice_index):
        return np.array(inst, dtype=float), "InstanceNumber"
    return None, None


def volume_timing(frames, slice_index, volume_index):
    """``(source, VolumeTiming)``: onset of each volume in s from the first volume.

    Raises :class:`TimingError` when no timing field separates the frames or the
    resulting times do not increase with the volume order.
    """
    source, times = choose_timing(frames, slice_index)
    if source is None:
        raise TimingError(
            "no per-frame timing: none of "
            + ", ".join(TIMING_PRECEDENCE)
            + " is present and distinct in every frame"
        )
    n_vol = int(volume_index.max()) + 1
    onset = np.array([times[volume_index == v].min() for v in range(n_vol)])
    if n_vol > 1 and np.any(np.diff(onset) <= 0):
        bad = int(np.argmax(np.diff(onset) <= 0))
        raise TimingError(f"{source} does not increase between volumes {bad + 1} and {bad + 2}")
    return source, onset - onset[0]


def first_volume_clock(frames, source, volume_index):
    """Clock time (s since midnight) of the first volume's onset, or None.

    Used to express ContrastBolusStartTime relative to the first frame. For TriggerTime
    (GE style) the clock is AcquisitionTime (else SeriesTime) plus the trigger delay.
    """
    first = [f for f, v in zip(frames, volume_index, strict=True) if v == 0]
    if source == "TriggerTime":
        clocks = [(f.acquisition_time if f.acquisition_time is not None else f.series_time) for f in first]
        if any(c is None for c in clocks):
            return None
        return min(c + f.trigger_time for c, f in zip(clocks, first, strict=True)) % DAY_S
    attr = "content_time" if source == "ContentTime" else "acquisition_time"
    clocks = [getattr(f, attr) for f in first]
    if any(c is None for c in clocks):
        return None
    return min(clocks)


def clock_difference(later, earlier):
    """``later − earlier`` in s for clock times, taking the shorter way round midnight."""
    return (later - earlier + DAY_S / 2) % DAY_S - DAY_S / 2
