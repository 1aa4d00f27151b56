"""Argument parser of ``dcequant`` (BIDS Apps conventions, fMRIPrep-style options).

Options left out on the command line are *absent* from the parsed namespace
(``argparse.SUPPRESS``), so a ``--config-file`` can set them and the command line
still wins when both do.
"""

import argparse
from pathlib import Path

from .. import __version__
from ..config import ANALYSIS_LEVELS, DEFAULT_MODELS, DEVICES, MODEL_NAMES, T1_METHODS, T1_VALIDITY
from ..nets.weights import shipped_networks
from ..registry.aifs import POPULATION_AIFS

S = argparse.SUPPRESS


def _label(value):
    """Accept ``01`` or ``sub-01``; return ``01``."""
    return value.split("-", 1)[1] if value.startswith(("sub-", "ses-")) else value


def build_parser():
    """Return the ``argparse.ArgumentParser`` of ``dcequant``."""
    parser = argparse.ArgumentParser(
        prog="dcequant",
        description="dcequant: DCE-MRI quantification as a BIDS App (T1 mapping, "
        "concentration, AIF, kinetic model fitting, reports).",
        epilog="Exit codes: 0 ok, 1 failure, 16 invalid BIDS input, 17 bad analysis "
        "level, 18 nothing selected. See docs/usage.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=S,
    )
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="folder of the derivative dataset")
    parser.add_argument("analysis_level", help=f"processing stage: one of {', '.join(ANALYSIS_LEVELS)}")
    parser.add_argument("--version", action="version", version=f"dcequant {__version__}")

    g = parser.add_argument_group("Selecting data")
    g.add_argument(
        "--participant-label",
        "--participant_label",
        dest="participant_label",
        nargs="+",
        type=_label,
        metavar="LABEL",
        help="subjects to process (with or without 'sub-'); default all",
    )
    g.add_argument(
        "--session-label",
        "--session_label",
        dest="session_label",
        nargs="+",
        type=_label,
        metavar="LABEL",
        help="sessions to process (with or without 'ses-'); default all",
    )
    g.add_argument(
        "--bids-filter-file",
        dest="bids_filter_file",
        type=Path,
        metavar="FILE",
        help="JSON of pybids entity filters per input kind ('vfa', 'dce', 'b1')",
    )
    g.add_argument(
        "--skip-bids-validation",
        "--skip_bids_validation",
        dest="skip_bids_validation",
        action="store_true",
        help="do not run bids-validator-deno on the input",
    )

    g = parser.add_argument_group("Execution")
    g.add_argument(
        "-w",
        "--work-dir",
        dest="work_dir",
        type=Path,
        metavar="DIR",
        help="Nipype working folder (cache; re-use it to resume) [default: <output_dir>/../work]",
    )
    g.add_argument(
        "--nprocs",
        "--n-cpus",
        dest="nprocs",
        type=int,
        metavar="N",
        help="processes run in parallel (MultiProc) [default: 1]",
    )
    g.add_argument(
        "--omp-nthreads",
        dest="omp_nthreads",
        type=int,
        metavar="N",
        help="threads per process (torch/BLAS) [default: 1]",
    )
    g.add_argument(
        "--mem", "--mem-gb", dest="mem", type=float, metavar="GB", help="memory limit for MultiProc"
    )
    g.add_argument(
        "--use-plugin",
        dest="use_plugin",
        type=Path,
        metavar="FILE",
        help="Nipype plugin file, YAML or .json (plugin: SLURM, plugin_args: {...})",
    )
    g.add_argument(
        "--stop-on-first-crash",
        dest="stop_on_first_crash",
        action="store_true",
        help="abort at the first failing node",
    )
    g.add_argument(
        "--resource-monitor",
        dest="resource_monitor",
        action="store_true",
        help="record CPU/memory use of every node (Nipype resource monitor)",
    )
    g.add_argument(
        "--write-graph",
        dest="write_graph",
        action="store_true",
        help="write the workflow graph (dot) into the work dir",
    )
    g.add_argument(
        "--boilerplate-only",
        "--boilerplate_only",
        dest="boilerplate_only",
        action="store_true",
        help="write logs/CITATION.md and stop",
    )
    g.add_argument(
        "--reports-only",
        dest="reports_only",
        action="store_true",
        help="rebuild the HTML reports from existing derivatives and stop",
    )
    g.add_argument(
        "--config-file",
        dest="config_file",
        type=Path,
        metavar="FILE",
        help="TOML or JSON file setting any option (command line wins)",
    )
    g.add_argument(
        "--random-seed",
        dest="random_seed",
        type=int,
        metavar="SEED",
        help="seed for every random number generator [default: 0]",
    )
    g.add_argument("-v", "--verbose", dest="verbose", action="count", help="more log output (repeatable)")
    g.add_argument(
        "--device", dest="device", choices=DEVICES, help="compute device for fitting [default: auto]"
    )

    g = parser.add_argument_group("Science")
    g.add_argument(
        "--models",
        dest="models",
        nargs="+",
        choices=MODEL_NAMES,
        metavar="MODEL",
        help=f"kinetic models to fit, any of {', '.join(MODEL_NAMES)} [default: {' '.join(DEFAULT_MODELS)}]",
    )
    g.add_argument(
        "--fit-delay",
        dest="fit_delay",
        action=argparse.BooleanOptionalAction,
        help="fit a bolus-arrival delay per voxel [default: off]",
    )
    g.add_argument(
        "--t1-method", dest="t1_method", choices=T1_METHODS, help="T1 mapping method [default: vfa-linear]"
    )
    g.add_argument(
        "--t1-validity",
        dest="t1_validity",
        choices=T1_VALIDITY,
        help="which VFA fits keep their T1: 'physical' (every physically valid fit; a relative "
        "residual > 0.1 is only flagged in the residual map and the report) or 'strict' "
        "(poor fits are dropped too) [default: physical]",
    )
    g.add_argument(
        "--t10",
        dest="t10",
        type=float,
        metavar="S",
        help="fixed pre-contrast T1 in s, used when no VFA data exist",
    )
    g.add_argument(
        "--b1-correction",
        dest="b1_correction",
        action=argparse.BooleanOptionalAction,
        help="use the TB1map when present [default: on]",
    )
    g.add_argument(
        "--motion-correction",
        dest="motion_correction",
        action=argparse.BooleanOptionalAction,
        help="rigid motion correction of the DCE series and registration of the VFA volumes to it; "
        "--no-motion-correction only resamples VFA/B1 data on another grid onto the DCE grid "
        "[default: on]",
    )
    g.add_argument(
        "--fd-threshold",
        dest="fd_threshold",
        type=float,
        metavar="MM",
        help="framewise displacement (mm) above which a frame is flagged as large motion [default: 0.5]",
    )
    g.add_argument(
        "--relaxivity",
        dest="relaxivity",
        type=float,
        metavar="R1",
        help="r1 in /mM/s [default: from ContrastBolusAgent + MagneticFieldStrength; "
        "else gadobutrol at the field strength (3 T if unknown), with a warning]",
    )
    g.add_argument(
        "--hematocrit",
        dest="hematocrit",
        type=float,
        metavar="HCT",
        help="blood haematocrit fraction [default: 0.45]",
    )
    g.add_argument(
        "--baseline-frames",
        dest="baseline_frames",
        type=int,
        metavar="N",
        help="pre-contrast frames [default: detected from the bolus arrival]",
    )
    g.add_argument(
        "--aif",
        dest="aif",
        metavar="SPEC",
        help=f"'auto' (detect in the image), a population name ({', '.join(POPULATION_AIFS)}), "
        "a TSV (columns time, plasma [, blood]) or an ROI mask NIfTI [default: auto]",
    )
    g.add_argument(
        "--roi",
        dest="roi",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="group level: ROI masks/dseg: files or a derivatives folder (…_mask/_dseg.nii.gz matched by "
        "subject/session; dseg names from its dseg.tsv) [default: the masks in output_dir]",
    )
    g.add_argument(
        "--group-config",
        dest="group_config",
        type=Path,
        metavar="FILE",
        help="group level: JSON with label, reliability, compare, statistic, site, by_site, "
        "exclude_uncertain (docs/group.md) [default: reliability across sessions, no AUROC]",
    )
    g.add_argument(
        "--dose-fraction",
        dest="dose_fraction",
        type=float,
        metavar="F",
        help="low dose as a fraction of the standard dose for the dose-reduction network, "
        "overriding DoseFraction of every *_acq-lowdose_ce-<agent>_T1w.json "
        "[default: from the sidecar]",
    )
    g.add_argument(
        "--nets",
        dest="nets",
        nargs="*",
        metavar="NET",
        help=f"kinetic-parameter networks to run after the fits, any of {', '.join(shipped_networks())}; "
        "--nets without a name runs none [default: all shipped]",
    )
    return parser
