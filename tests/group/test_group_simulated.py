"""Group AUROC on a simulated cohort's truth maps against the simulator's expectation.

``bidsapp.simulate`` shifts the subject-level log tumour-rim Ktrans of the second group
by Cohen's d, so the expected AUROC of a subject-level classifier is Φ(d/√2)
(``StudySummary.expected_auroc``). The group level reads the truth derivatives as a map
dataset (maps ``truth_Ktrans`` … found by entities, ROIs from ``desc-truth_dseg`` +
``dseg.tsv``); its AUROC must lie within 2.5 standard errors of the expectation (SE from
Hanley & McNeil 1982 at the expected AUROC and the cohort's class sizes).
"""

import json
import math

import pandas as pd
import pytest

from bidsapp.cli.run import main
from bidsapp.simulate import Grid, simulate_study

pytestmark = pytest.mark.slow


def _hanley_mcneil_se(a, n_pos, n_neg):
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return math.sqrt(
        (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    )


def test_truth_auroc_matches_the_simulated_effect(tmp_path):
    summary = simulate_study(
        tmp_path / "bids",
        n_subjects=16,
        n_sessions=1,
        grid=Grid((24, 24, 3), (220 / 24, 220 / 24, 6.0)),
        effect_size=2.0,
        seed=0,
    )
    truth = tmp_path / "bids" / "derivatives" / "truth"
    (tmp_path / "g.json").write_text(
        json.dumps({"label": {"column": summary.group_column, "positive": "high"}})
    )
    assert (
        main(
            [
                str(tmp_path / "bids"),
                str(truth),
                "group",
                "--roi",
                str(truth),
                "--group-config",
                str(tmp_path / "g.json"),
            ]
        )
        == 0
    )
    table = pd.read_csv(truth / "group_desc-auroc_stats.tsv", sep="\t")
    row = table[(table["map"] == "truth_Ktrans") & (table["roi"] == "tumour_rim")].iloc[0]
    assert (row.n_positive, row.n_negative) == (8, 8)
    expected = summary.expected_auroc  # Φ(2/√2) = 0.921
    assert abs(row.auroc - expected) < 2.5 * _hanley_mcneil_se(expected, 8, 8)
    # the effect is on Ktrans and vp of the rim only: white-matter Ktrans carries no signal
    wm = table[(table["map"] == "truth_Ktrans") & (table["roi"] == "white_matter")].iloc[0]
    assert wm.ci95_low < 0.5 < wm.ci95_high
