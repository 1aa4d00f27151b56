"""Unit tests of the converter's building blocks: timing, geometry, rules, headers."""

import numpy as np
import pytest

from bidsapp.conversion import geometry, rules, timing
from bidsapp.conversion.headers import parse_da, parse_dt, parse_tm


def test_parse_dicom_times():
    assert parse_tm("235959.500000") == pytest.approx(86399.5)
    assert parse_tm("10:30:00") == pytest.approx(37800.0)
    assert parse_tm("") is None and parse_tm("garbage") is None
    assert parse_da("20260102") - parse_da("20260101") == 1
    day, sec = parse_dt("20260101233000.25")
    assert day == parse_da("20260101") and sec == pytest.approx(84600.25)


def test_unwrap_midnight_moves_times_after_the_gap_to_the_next_day():
    clock = np.array([86390.0, 86395.0, 0.0, 5.0, 10.0])
    assert np.allclose(timing.unwrap_midnight(clock), [86390, 86395, 86400, 86405, 86410])
    same_day = np.array([100.0, 200.0, 3000.0])
    assert np.allclose(timing.unwrap_midnight(same_day), same_day)


class _F:
    """Minimal frame stand-in for timing tests."""

    def __init__(self, **kw):
        base = dict(
            trigger_time=None,
            acquisition_time=None,
            acquisition_date=None,
            content_time=None,
            content_date=None,
            temporal_position=None,
            temporal_resolution=None,
            instance_number=None,
            series_time=None,
        )
        base.update(kw)
        self.__dict__.update(base)


def test_timing_precedence_trigger_then_acquisition_then_content_then_tpi():
    k = np.zeros(3, int)
    ge = [_F(trigger_time=t, acquisition_time=1000.0) for t in (0.0, 4.0, 8.0)]
    assert timing.choose_timing(ge, k)[0] == "TriggerTime"  # AcquisitionTime constant on GE
    siemens = [_F(trigger_time=0.0, acquisition_time=1000.0 + t) for t in (0.0, 4.0, 8.0)]
    assert timing.choose_timing(siemens, k)[0] == "AcquisitionTime"
    content = [_F(content_time=500.0 + t) for t in (0.0, 3.0, 6.0)]
    assert timing.choose_timing(content, k)[0] == "ContentTime"
    tpi = [_F(temporal_position=p, temporal_resolution=2.5) for p in (1, 2, 3)]
    source, times = timing.choose_timing(tpi, k)
    assert source == "TemporalPositionIdentifier" and np.allclose(times, [0, 2.5, 5])
    assert timing.choose_timing([_F(), _F(), _F()], k) == (None, None)


def test_volume_timing_is_the_onset_relative_to_the_first_volume():
    # two slices per volume, second slice 0.4 s later; volumes 3 s apart, across midnight
    frames, k, t = [], [], []
    for vol in range(3):
        for sl in range(2):
            frames.append(_F(acquisition_time=(86398.0 + 3 * vol + 0.4 * sl) % 86400))
            k.append(sl)
            t.append(vol)
    source, vt = timing.volume_timing(frames, np.array(k), np.array(t))
    assert source == "AcquisitionTime" and np.allclose(vt, [0, 3, 6])


def test_volume_timing_without_any_timing_fails_clearly():
    with pytest.raises(timing.TimingError, match="no per-frame timing"):
        timing.volume_timing([_F(), _F()], np.zeros(2, int), np.arange(2))


def test_affine_uses_sorted_positions_and_real_spacing():
    iop = [1, 0, 0, 0, 1, 0]
    positions = np.array([[10, 20, z] for z in (8.0, 2.0, 5.0)])  # file order is not slice order
    locs = geometry.slice_locations(positions, iop)
    distinct = geometry.unique_locations(locs)
    step = geometry.slice_step(distinct, fallback=2.0)  # SliceThickness 2 mm, spacing 3 mm
    assert step == pytest.approx(3.0)
    aff = geometry.affine_from_dicom(iop, positions[np.argmin(locs)], (0.8, 0.9), step, n_rows=5)
    # rows reversed: j = 0 is the last row, 4 × 0.8 mm further along the column direction (LPS +y)
    assert np.allclose(aff, [[-0.9, 0, 0, -10], [0, 0.8, 0, -23.2], [0, 0, 3, 2], [0, 0, 0, 1]])
    assert np.linalg.det(aff[:3, :3]) < 0


def test_irregular_spacing_and_single_slice_without_thickness_are_errors():
    with pytest.raises(geometry.GeometryError, match="irregular slice spacing"):
        geometry.slice_step(np.array([0.0, 3.0, 7.0]))
    with pytest.raises(geometry.GeometryError, match="single slice"):
        geometry.slice_step(np.array([0.0]), fallback=None)
    assert geometry.slice_step(np.array([4.0]), fallback=2.5) == 2.5


def test_collinearity_check_rejects_mixed_stacks():
    iop = [1, 0, 0, 0, 1, 0]
    positions = np.array([[0, 0, 0], [0, 0, 3], [5, 0, 6]], float)
    with pytest.raises(geometry.GeometryError, match="in-plane"):
        geometry.check_collinear(positions, iop, geometry.slice_locations(positions, iop))


def test_rules_validation_messages_name_the_problem():
    with pytest.raises(ValueError, match=r"rules\[0\]: role 'dynamic'"):
        rules.parse_rules({"rules": [{"match": {"SeriesNumber": 3}, "role": "dynamic"}]})
    with pytest.raises(ValueError, match="unknown key"):
        rules.parse_rules({"rules": [{"match": {}, "role": "dce", "colour": 1}]})
    with pytest.raises(ValueError, match="bad regular expression"):
        rules.parse_rules({"rules": [{"match": {"SeriesDescription": "re:("}, "role": "dce"}]})
    with pytest.raises(ValueError, match="unknown top-level"):
        rules.parse_rules({"rule": []})
    with pytest.raises(ValueError, match="needs a 'role'"):
        rules.parse_rules({"rules": [{"match": {"SeriesNumber": 1}}]})


def test_rule_patterns():
    m = rules.pattern_matches
    assert m("*T2*", "ax_t2_tse") and not m("*t1*", "ax_t2_tse")
    assert m("re:^vfa_\\d+$", "VFA_12") and not m("re:^vfa_\\d+$", "vfa_x")
    assert m(3, "3") and m(12.5, 12.5000000001) and not m(3, "4")
    assert m([1, 2], 2) and m({"min": 1, "max": 5}, 4.5) and not m({"max": 5}, 6)
    assert m("M", ["ORIGINAL", "PRIMARY", "M", "ND"]) and m(
        "ORIGINAL\\PRIMARY*", ["ORIGINAL", "PRIMARY", "M"]
    )
    assert m(None, None) and not m("x", None)


def test_first_role_wins_and_sidecars_merge():
    parsed = rules.parse_rules(
        {
            "rules": [
                {"match": {"SeriesNumber": 7}, "role": "T2w", "sidecar": {"A": 1}},
                {"match": {"SeriesNumber": 7}, "role": "other", "sidecar": {"A": 2, "B": 3}},
            ]
        }
    )
    fields = {"SeriesNumber": 7}.get
    assert rules.apply_rules(parsed, fields) == ("T2w", "rules[0]", {"A": 2, "B": 3})


def test_same_date_after_midnight_is_unwrapped_and_changing_dates_are_used():
    k = np.zeros(3, int)
    stale = [_F(acquisition_time=t, acquisition_date=100) for t in (86395.0, 1.0, 7.0)]
    assert np.allclose(timing.choose_timing(stale, k)[1], [86395, 86401, 86407])
    dated = [_F(acquisition_time=t, acquisition_date=d) for t, d in ((86395.0, 100), (1.0, 101), (7.0, 101))]
    assert np.allclose(timing.choose_timing(dated, k)[1], [86395, 86401, 86407])


@pytest.mark.parametrize("signed,value", [(0, 0xF005), (1, 0x0F05), (1, 0x0005)])
def test_raw_pixel_reading_matches_pydicom_masking(tmp_path, signed, value):
    import pydicom
    from dicom_factory import write_series

    from bidsapp.conversion import pixels
    from bidsapp.conversion.discover import read_header
    from bidsapp.conversion.headers import frames_from_dataset

    path = write_series(tmp_path, np.full((3, 2, 1), 5.0), np.diag([-1.0, 1.0, 1.0, 1.0]), series_number=1)[0]
    ds = pydicom.dcmread(path)
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, signed
    ds.PixelData = np.full((2, 3), value, np.uint16).tobytes()
    ds.save_as(path)
    header, offset, reason = read_header(path)
    assert reason is None and offset is not None
    frame = frames_from_dataset(header, path)[0]
    frame.pixel_offset = offset
    assert np.array_equal(pixels._raw_pixels(frame), pydicom.dcmread(path).pixel_array)


def test_dicom_without_preamble_is_read_and_text_is_not(tmp_path):
    import pydicom
    from dicom_factory import write_series

    from bidsapp.conversion import pixels
    from bidsapp.conversion.discover import read_header
    from bidsapp.conversion.headers import frames_from_dataset

    data = np.arange(6.0).reshape(3, 2, 1) + 7
    path = write_series(tmp_path, data, np.diag([-1.0, 1.0, 1.0, 1.0]), series_number=1)[0]
    ds = pydicom.dcmread(path)
    del ds.file_meta
    ds.preamble = None
    raw = tmp_path / "raw_no_preamble"
    ds.save_as(raw, implicit_vr=True, little_endian=True, enforce_file_format=False)
    header, offset, reason = read_header(raw)
    assert reason is None and offset is not None
    frame = frames_from_dataset(header, raw)[0]
    frame.pixel_offset = offset
    assert np.array_equal(pixels._raw_pixels(frame), data[:, ::-1, 0].T)
    (tmp_path / "notes").write_bytes(b"\x08\x00 hello, not DICOM at all")
    assert read_header(tmp_path / "notes")[2] is not None
