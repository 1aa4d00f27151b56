"""Group level of dcequant.

Group level: ROI statistics (:mod:`.tables`), statistics on arrays (:mod:`.stats`), analyses on the tables
(:mod:`.analyses`), the group report (:mod:`.report`) and the runner (:mod:`.level`).
"""

from .level import run_group_level

__all__ = ["run_group_level"]
