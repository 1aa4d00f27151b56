"""JSON sidecars of the group tables: every column described, with units."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .settings import GroupSettings

_ID = {
    "participant_id": {"Description": "participant label (sub-<label>)"},
    "session_id": {"Description": "session label (ses-<label>); n/a without sessions"},
    "roi": {"Description": "ROI name: the 'name' of the label in dseg.tsv, or the desc of a binary mask"},
}
_UNITLESS = "dimensionless"


def _statistic(settings):
    return {
        "Description": "ROI summary used as each subject's value ('mean' or 'median' of the ROI voxels)",
        "Levels": {"mean": "ROI mean", "median": "ROI median"},
        "Value": settings.statistic,
    }


def roistats(units: dict[str, str], settings: GroupSettings) -> dict:
    """Sidecar of ``group_desc-roistats_stats.tsv``; ``units`` is ``{map: units}``."""
    same = "units of the map (MapUnits)"
    doc = {
        "Description": "ROI statistics of every map of every participant/session. Voxels that are NaN in the "
        "map (not estimated) are not counted in n_valid nor in any statistic; percentiles use linear "
        "interpolation (numpy default); sd uses n - 1.",
        **_ID,
        "map": {
            "Description": "map name: the derivative's desc and suffix joined by '_' (e.g. "
            "extendedtofts_Ktrans)"
        },
        "n_voxels": {
            "Description": "voxels in the ROI on the map grid (ROI resampled by nearest neighbour)",
            "Units": "voxels",
        },
        "n_valid": {
            "Description": "ROI voxels with a finite map value"
            + (" and an uncertainty within the exclusion threshold" if settings.uncertainty else ""),
            "Units": "voxels",
        },
        "MapUnits": dict(sorted(units.items())),
    }
    for col, text in (
        ("mean", "mean"),
        ("sd", "sample standard deviation (n - 1)"),
        ("median", "median"),
        ("q25", "25th percentile"),
        ("q75", "75th percentile"),
        ("p05", "5th percentile"),
        ("p95", "95th percentile"),
    ):
        doc[col] = {"Description": f"{text} of the valid ROI voxels; n/a when none", "Units": same}
    if settings.uncertainty:
        threshold, relative = settings.uncertainty
        doc["UncertaintyExclusion"] = {
            "Threshold": threshold,
            "Relative": relative,
            "Description": "voxels whose paired uncertainty map (<desc>Stderr or <desc>Std, same suffix) "
            "exceeds the threshold ("
            + ("a fraction of |value|" if relative else "in map units")
            + ") are excluded",
        }
    return doc


def _site(site):
    return {"Site": site} if site is not None else {}


def icc(settings: GroupSettings, site: str | None = None) -> dict:
    """Sidecar of ``group_desc-icc_stats.tsv``."""
    across = {
        "session": "repeated sessions (targets: participants)",
        "map": "different maps of one quantity (targets: participant x session)",
        "derivatives": "the same map in several output folders (targets: participant x session)",
    }
    return {
        "Description": "Reliability of each map x ROI summary over repeated measurements: "
        + across[settings.across],
        **_site(site),
        "RepeatedMeasurements": settings.across,
        "map": {"Description": "map name, or the compared maps joined by '/' (reliability across maps)"},
        "roi": _ID["roi"],
        "statistic": _statistic(settings),
        "icc_type": {
            "Description": "intraclass correlation form (Shrout & Fleiss 1979; McGraw & Wong 1996)",
            "Levels": {
                "ICC2": "ICC(2,1) = ICC(A,1): two-way random, absolute agreement, single measurement",
                "ICC3": "ICC(3,1) = ICC(C,1): two-way mixed, consistency, single measurement",
                "ICC2k": "ICC(2,k) = ICC(A,k): average of k measurements, absolute agreement",
                "ICC3k": "ICC(3,k) = ICC(C,k): average of k measurements, consistency",
            },
        },
        "icc": {"Description": "intraclass correlation coefficient", "Units": _UNITLESS},
        "ci95_low": {"Description": "lower bound of the 95 % confidence interval of icc", "Units": _UNITLESS},
        "ci95_high": {
            "Description": "upper bound of the 95 % confidence interval of icc",
            "Units": _UNITLESS,
        },
        "n_subjects": {"Description": "targets with a value for every measurement", "Units": "subjects"},
        "n_measurements": {"Description": "repeated measurements per target (k)", "Units": "measurements"},
        "bias": {
            "Description": "Bland-Altman mean difference (second minus first measurement); n/a unless k = 2",
            "Units": "units of the map",
        },
        "loa_low": {
            "Description": "Bland-Altman lower 95 % limit of agreement (bias - 1.96 SD)",
            "Units": "units of the map",
        },
        "loa_high": {
            "Description": "Bland-Altman upper 95 % limit of agreement (bias + 1.96 SD)",
            "Units": "units of the map",
        },
        "wcv": {
            "Description": "within-subject coefficient of variation, sqrt(mean_i(SD_i^2 / mean_i^2))",
            "Units": "fraction",
        },
    }


def _label(settings):
    return {"Description": "participants.tsv column holding the binary label", "Value": settings.label_column}


def auroc(settings: GroupSettings, site: str | None = None) -> dict:
    """Sidecar of ``group_desc-auroc_stats.tsv``."""
    return {
        "Description": "Diagnostic performance of each map x ROI summary (one value per subject: the mean "
        "over its sessions) for the binary label; higher values count as positive (no direction is chosen "
        "from the data, so an AUROC below 0.5 means lower values in the positive class).",
        **_site(site),
        "map": {"Description": "map name (desc_suffix)"},
        "roi": _ID["roi"],
        "statistic": _statistic(settings),
        "label": _label(settings),
        "positive": {"Description": "value of the label column counted as positive"},
        "auroc": {
            "Description": "area under the ROC curve (Mann-Whitney; ties count 1/2)",
            "Units": _UNITLESS,
        },
        "ci95_low": {"Description": "DeLong (1988) 95 % CI lower bound, clipped to 0", "Units": _UNITLESS},
        "ci95_high": {"Description": "DeLong (1988) 95 % CI upper bound, clipped to 1", "Units": _UNITLESS},
        "n_positive": {"Description": "subjects with the positive label", "Units": "subjects"},
        "n_negative": {"Description": "subjects with another label", "Units": "subjects"},
        "threshold": {
            "Description": "Youden-optimal threshold (positive when the value is above it; midpoint "
            "between consecutive observed values)",
            "Units": "units of the map",
        },
        "sensitivity": {"Description": "sensitivity at the threshold", "Units": "fraction"},
        "specificity": {"Description": "specificity at the threshold", "Units": "fraction"},
    }


def aurocdiff(settings: GroupSettings) -> dict:
    """Sidecar of ``group_desc-aurocdiff_stats.tsv``."""
    return {
        "Description": "Paired DeLong (1988) tests of two maps' AUROCs on the subjects having both",
        "map_a": {"Description": "first map"},
        "map_b": {"Description": "second map"},
        "roi": _ID["roi"],
        "statistic": _statistic(settings),
        "label": _label(settings),
        "auroc_a": {"Description": "AUROC of map_a on the paired subjects", "Units": _UNITLESS},
        "auroc_b": {"Description": "AUROC of map_b on the paired subjects", "Units": _UNITLESS},
        "delta": {"Description": "auroc_a - auroc_b", "Units": _UNITLESS},
        "p_value": {"Description": "two-sided p-value of the paired DeLong z test", "Units": _UNITLESS},
    }


def siteeffect(settings: GroupSettings) -> dict:
    """Sidecar of ``group_desc-siteeffect_stats.tsv``."""
    return {
        "Description": "Site effect on each map x ROI summary (one value per subject): Kruskal-Wallis test",
        "map": {"Description": "map name (desc_suffix)"},
        "roi": _ID["roi"],
        "statistic": _statistic(settings),
        "site_column": {"Description": "participants.tsv column holding the site"},
        "n_sites": {"Description": "sites with at least one subject value", "Units": "sites"},
        "n_subjects": {"Description": "subjects with a value", "Units": "subjects"},
        "h": {"Description": "Kruskal-Wallis H statistic (tie-corrected)", "Units": _UNITLESS},
        "p_value": {
            "Description": "p-value of H (chi-square, n_sites - 1 degrees of freedom)",
            "Units": _UNITLESS,
        },
    }
