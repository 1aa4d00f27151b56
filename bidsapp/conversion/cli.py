"""``dcequant-convert DICOM_DIR BIDS_DIR --participant-label L [...]``.

Exit codes: 0 — everything with a role was converted (or, with ``--dry-run``, the plan
was printed); 1 — some series could not be converted (each named on stderr; the rest
were converted); 2 — bad arguments, unreadable rules file or no DICOM found.
"""

import argparse
import sys
from collections.abc import Sequence

from .convert import convert_dicom_study


def build_parser():
    """Return the argument parser of ``dcequant-convert``."""
    parser = argparse.ArgumentParser(
        prog="dcequant-convert",
        description="Convert a DCE-MRI DICOM study (dynamic, flip-angle, anatomy, B1 series) to raw BIDS.",
        epilog="Roles, timing precedence and the rules file format: docs/conversion.md",
    )
    parser.add_argument("dicom_dir", metavar="DICOM_DIR", help="folder searched recursively for DICOM files")
    parser.add_argument("bids_dir", metavar="BIDS_DIR", help="BIDS dataset root (created if needed)")
    parser.add_argument("--participant-label", required=True, help="subject label, with or without 'sub-'")
    parser.add_argument("--session-label", help="session label, with or without 'ses-'")
    parser.add_argument(
        "--config", metavar="RULES_JSON", help="user rules overriding roles / adding sidecar fields"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan as a table and write nothing")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing files whose content differs"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dcequant-convert``; return the exit code (0 on success, 1 on a conversion error)."""
    args = build_parser().parse_args(argv)
    try:
        outcome = convert_dicom_study(
            args.dicom_dir,
            args.bids_dir,
            args.participant_label,
            session_label=args.session_label,
            config=args.config,
            dry_run=args.dry_run,
            overwrite=args.overwrite,
        )
    except ValueError as exc:
        print(f"dcequant-convert: error: {exc}", file=sys.stderr)
        return 2
    plan = outcome if args.dry_run else outcome.plan
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.dry_run:
        print(plan.table())
        for problem in plan.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1 if plan.problems else 0
    for r in outcome.entries:
        if r.files:
            print(f"{r.status:10s} {r.entry.label} -> {r.entry.target}")
    for error in outcome.errors:
        print(f"error: {error}", file=sys.stderr)
    print(f"provenance: {outcome.provenance}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
