"""Regenerate the golden reference of ``tests/e2e/test_golden.py``.

Run from the repository root, with the code whose outputs are the reference::

    python tests/data/golden/regenerate.py            # all cases
    python tests/data/golden/regenerate.py default    # one case

It runs every case of ``tests/golden.py`` in a temporary folder (about 10 s each on
2 cores) and rewrites ``tests/data/golden/<case>/files.json`` and ``arrays.npz``.
Regenerate only on purpose: when a change is meant to alter results (say so in the
commit, with the reason), never to make a restructuring pass. The history of the stored
reference is in the docstring of ``tests/golden.py``.
"""

import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(TESTS.parent), str(TESTS)]  # the checkout's bidsapp, then tests/golden.py

from golden import CASES, run_case, write_reference  # noqa: E402


def main(cases):
    for case in cases or CASES:
        with tempfile.TemporaryDirectory(prefix=f"golden-{case}-") as tmp:
            out = run_case(case, tmp)
            write_reference(case, out, Path(tmp))
        print(f"golden reference written: {TESTS / 'data' / 'golden' / case}")


if __name__ == "__main__":
    main(sys.argv[1:])
