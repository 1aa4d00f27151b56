"""Relaxivity table look-up."""

import pytest

from bidsapp import relaxivity_for
from bidsapp.relaxivity import RELAXIVITY_TABLE

REQUIRED = ("gadobutrol", "gadoterate", "gadobenate", "gadopentetate", "gadoteridol", "gadodiamide")


@pytest.mark.parametrize("agent", REQUIRED)
@pytest.mark.parametrize("field", (1.5, 3.0))
def test_required_agents_tabulated(agent, field):
    value = relaxivity_for(agent, field)
    assert value == RELAXIVITY_TABLE[agent][field]
    assert 2.0 < value < 8.0


@pytest.mark.parametrize(
    "name, generic",
    [
        ("Gadovist", "gadobutrol"),
        ("Gadavist", "gadobutrol"),
        ("DOTAREM", "gadoterate"),
        ("gadoterate meglumine", "gadoterate"),
        ("Gd-DOTA", "gadoterate"),
        ("MultiHance", "gadobenate"),
        ("Magnevist", "gadopentetate"),
        ("Gd-DTPA", "gadopentetate"),
        ("ProHance", "gadoteridol"),
        ("Omniscan", "gadodiamide"),
        ("Gd-DTPA-BMA", "gadodiamide"),
        ("Primovist", "gadoxetate"),
    ],
)
def test_brand_names_and_abbreviations(name, generic):
    assert relaxivity_for(name, 3.0) == RELAXIVITY_TABLE[generic][3.0]


def test_field_interpolation_and_tolerance():
    assert relaxivity_for("gadobutrol", 1.45) == 5.2
    assert relaxivity_for("gadobutrol", 2.25) == pytest.approx(5.1)
    with pytest.raises(ValueError, match="field_strength"):
        relaxivity_for("gadobutrol", 7.0)
    with pytest.raises(ValueError, match="field_strength"):
        relaxivity_for("gadobutrol", "strong")


def test_unknown_agent():
    with pytest.raises(ValueError, match="agent"):
        relaxivity_for("ferumoxytol", 3.0)
