"""Readers for the OSIPI Code Collection test data in ``tests/data/osipi`` (Apache-2.0)."""

from pathlib import Path

import numpy as np
import pandas as pd

OSIPI = Path(__file__).parent / "data" / "osipi"


def array_cell(value):
    """Turn a whitespace-separated CSV cell into a float array."""
    return np.array(str(value).split(), dtype=float)


def read_csv(relative):
    """Read an OSIPI CSV (BOM-safe, header spaces stripped)."""
    df = pd.read_csv(OSIPI / relative, encoding="utf-8-sig")
    df.columns = [c.strip() for c in df.columns]
    return df
