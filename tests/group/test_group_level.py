"""The group level on synthetic derivatives (tests/group_data.py): output contract,
map discovery, ROI statistics, missing sessions, NaN ROI means, configuration."""

import json
import logging
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from group_data import AFFINE, write_derivatives

from bidsapp.cli.run import main
from bidsapp.config import make_config
from bidsapp.group import run_group_level
from bidsapp.group.analyses import AUROC_COLUMNS, AUROCDIFF_COLUMNS, ICC_COLUMNS, SITE_COLUMNS
from bidsapp.group.settings import load_group_settings
from bidsapp.group.tables import ROISTATS_COLUMNS, ROIImage, find_maps, find_roi_files

CONFIG = {
    "label": {"column": "grade", "positive": "high"},
    "compare": [["cnn_Ktrans", "extendedtofts_Ktrans"]],
    "statistic": "mean",
}


def _run(root, config=None, extra=()):
    argv = [str(root / "bids"), str(root / "out"), "group", "--roi", str(root / "rois")]
    if config is not None:
        (root / "group.json").write_text(json.dumps(config))
        argv += ["--group-config", str(root / "group.json")]
    return main(argv + list(extra))


def _read(path):
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("group")
    write_derivatives(root, n_subjects=8, sites=["A", "A", "B", "B"], effect=3.0)
    assert _run(root, CONFIG) == 0
    return root


def test_outputs_at_the_root_with_exact_columns_and_sidecars(cohort):
    out = cohort / "out"
    expected = {
        "roistats": ROISTATS_COLUMNS,
        "icc": ICC_COLUMNS,
        "auroc": AUROC_COLUMNS,
        "aurocdiff": AUROCDIFF_COLUMNS,
        "siteeffect": SITE_COLUMNS,
    }
    for desc, columns in expected.items():
        table = _read(out / f"group_desc-{desc}_stats.tsv")
        assert tuple(table.columns) == tuple(columns) and len(table) > 0
        sidecar = json.loads((out / f"group_desc-{desc}_stats.json").read_text())
        for column in columns:
            assert sidecar[column]["Description"]
        numeric = [
            c
            for c in columns
            if c
            not in (
                "participant_id",
                "session_id",
                "map",
                "map_a",
                "map_b",
                "roi",
                "statistic",
                "icc_type",
                "label",
                "positive",
                "site_column",
            )
        ]
        assert all("Units" in sidecar[c] for c in numeric)
    assert (out / "group_report.html").is_file() and not (out / "group").exists()
    assert (
        json.loads((out / "group_desc-roistats_stats.json").read_text())["MapUnits"]["extendedtofts_Ktrans"]
        == "1/min"
    )


def test_maps_are_found_by_entities(cohort):
    maps = find_maps(cohort / "out" / "sub-01" / "ses-01")
    assert set(maps) == {
        "vfa_T1map",
        "extendedtofts_Ktrans",
        "extendedtoftsStderr_Ktrans",
        "extendedtofts_ve",
        "cnn_Ktrans",
    }  # not the mask, not the 4-D desc-conc_dce
    rows = _read(cohort / "out" / "group_desc-roistats_stats.tsv")
    assert set(rows["map"]) == set(maps) and set(rows["roi"]) == {"white_matter", "grey_matter", "tumour"}
    assert set(rows["session_id"]) == {"ses-01", "ses-02"}


def test_roi_statistics_match_numpy_and_skip_nan(cohort):
    out = cohort / "out"
    values = nib.load(
        str(out / "sub-03/ses-02/perf/sub-03_ses-02_desc-extendedtofts_Ktrans.nii.gz")
    ).get_fdata()
    labels = nib.load(
        str(cohort / "rois/sub-03/ses-02/anat/sub-03_ses-02_desc-tissue_dseg.nii.gz")
    ).get_fdata()
    inside = values[labels == 3]
    valid = inside[np.isfinite(inside)]
    rows = _read(out / "group_desc-roistats_stats.tsv")
    row = rows[
        (rows.participant_id == "sub-03")
        & (rows.session_id == "ses-02")
        & (rows["map"] == "extendedtofts_Ktrans")
        & (rows.roi == "tumour")
    ].iloc[0]
    assert int(row.n_voxels) == inside.size and int(row.n_valid) == valid.size < inside.size
    expected = [valid.mean(), valid.std(ddof=1), np.median(valid), *np.percentile(valid, [25, 75, 5, 95])]
    np.testing.assert_allclose(
        [float(row[c]) for c in ("mean", "sd", "median", "q25", "q75", "p05", "p95")], expected, rtol=1e-9
    )


def test_auroc_and_icc_rows(cohort):
    auroc = _read(cohort / "out" / "group_desc-auroc_stats.tsv")
    row = auroc[(auroc["map"] == "extendedtofts_Ktrans") & (auroc.roi == "tumour")].iloc[0]
    assert (row.label, row.positive, row.n_positive, row.n_negative) == ("grade", "high", "4", "4")
    assert float(row.auroc) > 0.8 and float(row.ci95_low) <= float(row.auroc) <= float(row.ci95_high)
    icc = _read(cohort / "out" / "group_desc-icc_stats.tsv")
    part = icc[(icc["map"] == "vfa_T1map") & (icc.roi == "white_matter")]
    assert list(part.icc_type) == ["ICC2", "ICC3", "ICC2k", "ICC3k"] and set(part.n_measurements) == {"2"}
    assert set(part.n_subjects) == {"8"} and float(part.icc.iloc[0]) > 0.7
    diff = _read(cohort / "out" / "group_desc-aurocdiff_stats.tsv")
    assert set(diff.roi) == {"white_matter", "grey_matter", "tumour"} and set(diff.map_a) == {"cnn_Ktrans"}


def _copy(cohort, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(cohort, root, ignore=shutil.ignore_patterns("group_*"))
    return root


def test_missing_session_drops_the_subject_with_a_reason(cohort, tmp_path, caplog):
    root = _copy(cohort, tmp_path)
    shutil.rmtree(root / "out/sub-02/ses-02")
    config = make_config(
        {
            "bids_dir": root / "bids",
            "output_dir": root / "out",
            "analysis_level": "group",
            "roi": [root / "rois"],
        }
    )
    with caplog.at_level(logging.WARNING, logger="dcequant"):
        run_group_level(config)
    assert "sub-02 left out of reliability: missing session(s) ses-02: subject dropped" in caplog.text
    icc = _read(root / "out" / "group_desc-icc_stats.tsv")
    assert set(icc.n_subjects) == {"7"}
    report = (root / "out" / "group_report.html").read_text()
    assert "missing session(s) ses-02: subject dropped" in report
    assert not (root / "out" / "group_desc-auroc_stats.tsv").exists()  # no label configured: no AUROC


def test_nan_roi_mean_is_na_and_leaves_the_subject_out(cohort, tmp_path, caplog):
    root = _copy(cohort, tmp_path)
    for session in ("01", "02"):
        path = root / f"out/sub-05/ses-{session}/perf/sub-05_ses-{session}_desc-cnn_Ktrans.nii.gz"
        labels = nib.load(
            str(root / f"rois/sub-05/ses-{session}/anat/sub-05_ses-{session}_desc-tissue_dseg.nii.gz")
        )
        data = nib.load(str(path)).get_fdata().astype(np.float32)
        data[np.asarray(labels.dataobj) == 3] = np.nan
        nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    (root / "group.json").write_text(json.dumps(CONFIG))
    config = make_config(
        {
            "bids_dir": root / "bids",
            "output_dir": root / "out",
            "analysis_level": "group",
            "roi": [root / "rois"],
            "group_config": root / "group.json",
        }
    )
    with caplog.at_level(logging.WARNING, logger="dcequant"):
        run_group_level(config)
    rows = _read(root / "out" / "group_desc-roistats_stats.tsv")
    row = rows[(rows.participant_id == "sub-05") & (rows["map"] == "cnn_Ktrans") & (rows.roi == "tumour")]
    assert set(row.n_valid) == {"0"} and set(row["mean"]) == {"n/a"} and set(row.sd) == {"n/a"}
    auroc = _read(root / "out" / "group_desc-auroc_stats.tsv")
    cnn = auroc[(auroc["map"] == "cnn_Ktrans") & (auroc.roi == "tumour")].iloc[0]
    ktrans = auroc[(auroc["map"] == "extendedtofts_Ktrans") & (auroc.roi == "tumour")].iloc[0]
    assert (
        int(cnn.n_positive) + int(cnn.n_negative) == 7
        and int(ktrans.n_positive) + int(ktrans.n_negative) == 8
    )
    assert (
        "sub-05 left out of AUROC and site effects: no valid voxel in any session (cnn_Ktrans, ROI tumour)"
        in caplog.text
    )
    icc = _read(root / "out" / "group_desc-icc_stats.tsv")
    assert set(icc[(icc["map"] == "cnn_Ktrans") & (icc.roi == "tumour")].n_subjects) == {"7"}


def test_single_class_is_a_one_line_error(cohort, tmp_path, capsys):
    root = _copy(cohort, tmp_path)
    code = _run(root, {"label": {"column": "grade", "positive": "nonexistent"}})
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "participants.tsv: column 'grade' gives one class only" in err[0]
    assert not list((root / "out").glob("group_*"))  # nothing written


def test_bad_group_config_names_the_key(tmp_path):
    path = tmp_path / "g.json"
    for config, message in (
        ({"labels": {}}, "unknown key"),
        ({"statistic": "mode"}, "'statistic'"),
        ({"label": {"column": "grade"}}, "'label' needs"),
        ({"compare": [["a"]]}, "'compare'"),
        ({"reliability": {"across": "map"}}, "'reliability.maps'"),
        ({"exclude_uncertain": {"threshold": -1}}, "exclude_uncertain.threshold"),
    ):
        path.write_text(json.dumps(config))
        with pytest.raises(ValueError, match=message):
            load_group_settings(path)


def test_reliability_across_maps_and_by_site(cohort, tmp_path):
    root = _copy(cohort, tmp_path)
    config = {
        "reliability": {"across": "map", "maps": [["cnn_Ktrans", "extendedtofts_Ktrans"]]},
        "by_site": True,
        "label": {"column": "grade", "positive": "high"},
    }
    assert _run(root, config) == 0
    icc = _read(root / "out" / "group_desc-icc_stats.tsv")
    assert set(icc["map"]) == {"cnn_Ktrans/extendedtofts_Ktrans"} and set(icc.n_subjects) == {
        "16"
    }  # 8 x 2 sessions
    for site in ("A", "B"):
        assert tuple(_read(root / "out" / f"group_site-{site}_desc-icc_stats.tsv").columns) == ICC_COLUMNS
        table = _read(root / "out" / f"group_site-{site}_desc-auroc_stats.tsv")
        assert set(table.n_positive) == {"2"} and set(table.n_negative) == {"2"}


def test_reliability_across_derivative_folders(cohort, tmp_path):
    root = _copy(cohort, tmp_path)
    shutil.copytree(root / "out", root / "out_other", ignore=shutil.ignore_patterns("group_*"))
    path = root / "out_other/sub-01/ses-01/perf/sub-01_ses-01_desc-extendedtofts_Ktrans.nii.gz"
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(img.get_fdata().astype(np.float32) * 1.1, AFFINE), str(path))
    assert _run(root, {"reliability": {"across": "derivatives", "derivatives": ["out_other"]}}) == 0
    icc = _read(root / "out" / "group_desc-icc_stats.tsv")
    same = icc[(icc["map"] == "vfa_T1map") & (icc.roi == "tumour")]
    changed = icc[
        (icc["map"] == "extendedtofts_Ktrans") & (icc.roi == "tumour") & (icc.icc_type == "ICC2")
    ].iloc[0]
    assert np.allclose(same.icc.astype(float), 1.0) and float(changed.icc) < 1.0 and float(changed.bias) > 0


def test_uncertainty_exclusion(cohort, tmp_path):
    root = _copy(cohort, tmp_path)
    assert _run(root, {"exclude_uncertain": {"threshold": 0.1, "relative": True}}) == 0
    new = _read(root / "out" / "group_desc-roistats_stats.tsv").set_index(
        ["participant_id", "session_id", "map", "roi"]
    )
    old = _read(cohort / "out" / "group_desc-roistats_stats.tsv").set_index(
        ["participant_id", "session_id", "map", "roi"]
    )
    key = ("sub-01", "ses-01", "extendedtofts_Ktrans", "grey_matter")
    assert int(new.loc[key, "n_valid"]) < int(old.loc[key, "n_valid"])  # stderr/Ktrans ~ 0.15 in grey matter
    other = ("sub-01", "ses-01", "cnn_Ktrans", "grey_matter")  # no uncertainty map: unchanged
    assert new.loc[other, "n_valid"] == old.loc[other, "n_valid"]


def test_roi_on_another_grid_is_resampled_by_nearest_neighbour():
    labels = np.zeros((4, 4, 2), np.int32)
    labels[1:3, 1:3, :] = 1
    roi = ROIImage(labels, {1: "box"}, np.diag([2.0, 2.0, 2.0, 1.0]))
    fine = roi.on_grid((8, 8, 4), np.diag([1.0, 1.0, 1.0, 1.0]))
    # fine voxel i has centre i mm -> coarse index round(i / 2); label 1 covers coarse 1..2 -> fine 1..5
    # (banker's rounding sends 1 mm (0.5) to 0 and 5 mm (2.5) to 2)
    assert fine[:, 3, 0].tolist() == [0, 0, 1, 1, 1, 1, 0, 0] and fine.shape == (8, 8, 4)
    assert fine[3, 3, 3] == 0  # z = 3 mm -> coarse 1.5 -> 2, outside the 2-slice image


def test_find_roi_files(cohort, tmp_path):
    files = find_roi_files([cohort / "rois"], "01", "01")
    assert [p.name for p in files] == ["sub-01_ses-01_desc-tissue_dseg.nii.gz"]
    template = str(
        cohort / "rois/sub-{subject}/ses-{session}/anat/sub-{subject}_ses-{session}_desc-tissue_dseg.nii.gz"
    )
    assert find_roi_files([template], "02", "01")[0].is_file()
    with pytest.raises(ValueError, match="--roi"):
        find_roi_files([tmp_path / "missing.nii.gz"], "01", None)


def test_tables_of_an_earlier_run_are_not_left_stale(cohort, tmp_path):
    root = tmp_path / "study"
    shutil.copytree(cohort, root)
    assert (root / "out" / "group_desc-auroc_stats.tsv").is_file()
    assert _run(root) == 0  # no label configured any more
    names = sorted(p.name for p in (root / "out").glob("group_*"))
    assert names == [
        "group_desc-icc_stats.json",
        "group_desc-icc_stats.tsv",
        "group_desc-roistats_stats.json",
        "group_desc-roistats_stats.tsv",
        "group_desc-siteeffect_stats.json",
        "group_desc-siteeffect_stats.tsv",
        "group_report.html",
    ]
