"""``dcequant bids_dir output_dir {participant,group} [options]``.

Exit codes: 0 success, 1 failure, 16 invalid BIDS input, 17 bad analysis level,
18 nothing selected.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..config import ANALYSIS_LEVELS, Config, load_config_file, make_config

EXIT_OK, EXIT_FAILURE, EXIT_INVALID_BIDS, EXIT_BAD_LEVEL, EXIT_NOTHING_SELECTED = 0, 1, 16, 17, 18
LOGGER = logging.getLogger("dcequant")


class AppError(Exception):
    """A user-facing error with its exit code."""

    def __init__(self, message, code=EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def parse_config(argv: Sequence[str] | None) -> Config:
    """Parse ``argv`` (plus ``--config-file``) into a validated :class:`~bidsapp.config.Config`."""
    from .parser import build_parser

    args = vars(build_parser().parse_args(argv))
    options = {}
    config_file = args.pop("config_file", None)
    if config_file is not None:
        options.update(load_config_file(config_file))
    options.update(args)
    if options.get("analysis_level") not in ANALYSIS_LEVELS:
        raise AppError(
            f"analysis_level must be one of {', '.join(ANALYSIS_LEVELS)}, got "
            f"{options.get('analysis_level')!r}",
            EXIT_BAD_LEVEL,
        )
    return make_config(options)


def setup_logging(verbose):
    """Configure the root logger: WARNING for ``verbose < 0``, INFO for 0, DEBUG above."""
    level = logging.WARNING if verbose < 0 else logging.INFO if verbose == 0 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(asctime)s [%(levelname)s] %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    _quiet_nipype(verbose)


def _quiet_nipype(verbose):
    """Nipype logs through our handlers only, at WARNING unless ``-v``/``-vv``."""
    nipype_level = logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    for name in ("nipype.workflow", "nipype.interface", "nipype.utils", "nipype"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(nipype_level)


def _validator_command():
    """Return the ``bids-validator-deno`` command line.

    The ``bids-validator-deno`` command: its Python package run by this interpreter, else the executable on
    PATH.
    """
    if importlib.util.find_spec("bids_validator_deno") is not None:
        return [sys.executable, "-c", "import sys; from bids_validator_deno import cli; sys.exit(cli())"]
    exe = shutil.which("bids-validator-deno")
    if exe is None:
        raise AppError(
            "bids-validator-deno is not installed (pip install bids-validator-deno); "
            "or pass --skip-bids-validation"
        )
    return [exe]


def validate_bids(bids_dir):
    """Run ``bids-validator-deno``; raise :class:`AppError` (16) when it reports errors."""
    proc = subprocess.run(
        [*_validator_command(), "--format", "json", str(bids_dir)], capture_output=True, text=True
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AppError(f"bids-validator-deno failed on {bids_dir}: {proc.stderr.strip()[-500:]}") from None
    errors = [
        issue for issue in report.get("issues", {}).get("issues", []) if issue.get("severity") == "error"
    ]
    if errors:
        lines = sorted({f"{e.get('code')}: {e.get('location', '')}" for e in errors})
        raise AppError(
            f"{bids_dir} is not valid BIDS ({len(errors)} error(s)); first: {'; '.join(lines[:5])} "
            "(fix them or pass --skip-bids-validation)",
            EXIT_INVALID_BIDS,
        )
    LOGGER.info("bids-validator-deno: %s is valid", bids_dir)


def _read_plugin_file(path):
    """Nipype plugin settings from a YAML (needs PyYAML) or JSON file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AppError(f"--use-plugin {path}: cannot read ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise AppError(f"--use-plugin {path}: invalid JSON ({exc})") from None
    try:
        import yaml
    except ImportError:
        raise AppError(
            f"--use-plugin {path}: reading YAML needs PyYAML (pip install pyyaml); "
            "or write the plugin file as JSON"
        ) from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise AppError(f"--use-plugin {path}: invalid YAML ({exc})") from None


def _plugin(config, progress):
    if config.use_plugin is not None:
        settings = _read_plugin_file(Path(config.use_plugin))
        if "plugin" not in settings:
            raise AppError(f"--use-plugin {config.use_plugin}: key 'plugin' is missing")
        plugin, args = settings["plugin"], dict(settings.get("plugin_args") or {})
    elif config.nprocs > 1:
        plugin, args = "MultiProc", {"n_procs": config.nprocs, "raise_insufficient": False}
        if config.mem:
            args["memory_gb"] = config.mem
    else:
        plugin, args = "Linear", {}
    if plugin in ("MultiProc", "Linear", "LegacyMultiProc"):
        args["status_callback"] = progress
    return plugin, args


def _nipype_config(config):
    from nipype import config as nipype_config

    settings = {
        "execution": {
            "crashdump_dir": str(Path(config.output_dir) / "logs" / "crash"),
            "crashfile_format": "txt",
            "stop_on_first_crash": config.stop_on_first_crash,
            "remove_unnecessary_outputs": False,
            "parameterize_dirs": False,
            "get_linked_libs": False,
            "check_version": False,
        },
        "monitoring": {"enabled": config.resource_monitor},
    }
    nipype_config.update_config(settings)
    if config.resource_monitor:
        nipype_config.enable_resource_monitor()
    return settings


def _crash_summary(crash_dir, since, nodes):
    """Summarise the crash files of this run's nodes.

    ``node: last error line`` of every crash file written since ``since`` (epoch s) by one of ``nodes`` (full
    node names), not by concurrent runs writing into the same output folder.
    """
    summary = []
    for path in sorted(Path(crash_dir).glob("crash-*.txt")):
        if path.stat().st_mtime < since:
            continue
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        node = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Node:")), path.name)
        if node not in nodes:
            continue
        error = next(
            (line for line in reversed(lines) if "Error" in line.split(":", 1)[0]), lines[-1] if lines else ""
        )
        summary.append(f"{node}: {error}")
    return summary


def run_participant(config: Config, argv: Sequence[str] | None = None) -> int:
    """Run the participant level for ``config``; return the exit code.

    Parameters
    ----------
    config : bidsapp.config.Config
        Parsed command line.
    argv : sequence of str, optional
        The command line, recorded in ``logs/config-*.json``.

    Returns
    -------
    int
        ``EXIT_OK`` (0). Failures raise :class:`AppError` with their exit code (no selected
        session: ``EXIT_NOTHING_SELECTED``; a failed node: ``EXIT_FAILURE``).
    """
    from ..bids_query import NothingSelectedError, collect_sessions, load_filter_file
    from ..boilerplate import write_citation
    from ..derivatives import write_dataset_description
    from ..report import write_subject_report
    from ..runtime import configure_process
    from .progress import Progress
    from .record import write_config_record

    filters = load_filter_file(config.bids_filter_file) if config.bids_filter_file else None
    try:
        sessions = collect_sessions(config.bids_dir, config.participant_label, config.session_label, filters)
    except NothingSelectedError as exc:
        raise AppError(str(exc), EXIT_NOTHING_SELECTED) from None
    LOGGER.info("selected %d session(s): %s", len(sessions), ", ".join(s.name for s in sessions))
    work_dir = Path(config.work_dir or Path(config.output_dir).resolve().parent / "work").resolve()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    LOGGER.debug("configuration: %s", write_config_record(config, argv))
    write_dataset_description(config.output_dir, config.bids_dir)

    from workflows.base import init_participant_wf

    wf = init_participant_wf(config=config, sessions=sessions, work_dir=work_dir)
    citation = write_citation(config.output_dir, wf)
    LOGGER.info("methods boilerplate: %s", citation)
    if config.boilerplate_only:
        return EXIT_OK
    subjects = sorted({s.subject for s in sessions})
    if config.reports_only:
        for subject in subjects:
            LOGGER.info("report: %s", write_subject_report(config.output_dir, subject))
        return EXIT_OK
    configure_process(threads=config.omp_nthreads, seed=config.random_seed)
    settings = _nipype_config(config)
    _quiet_nipype(config.verbose)
    wf.config.update(settings)
    if config.write_graph:
        try:
            wf.write_graph(graph2use="colored", format="svg", simple_form=True)
        except OSError as exc:  # graphviz's ``dot`` is not installed: keep the .dot file
            LOGGER.warning("--write-graph: %s; graph left in dot format under %s", exc, work_dir / wf.name)
    progress = Progress.for_workflow(wf)
    plugin, plugin_args = _plugin(config, progress)
    started = time.time()
    try:
        wf.run(plugin=plugin, plugin_args=plugin_args)
    except RuntimeError:
        crash_dir = Path(config.output_dir) / "logs" / "crash"
        failures = _crash_summary(crash_dir, started, {f"{wf.name}.{name}" for name in wf.list_node_names()})
        raise AppError(
            f"processing failed: {'; '.join(failures) or 'see the log'} (crash files in {crash_dir}; "
            f"re-run with the same --work-dir {work_dir} to resume)"
        ) from None
    for subject in subjects:
        print(
            f"dcequant: report for sub-{subject}: {Path(config.output_dir).resolve() / f'sub-{subject}.html'}"
        )
    return EXIT_OK


def run_group(config: Config, argv: Sequence[str] | None = None) -> int:
    """Run the group level for ``config`` and print where the group report is; return the exit code."""
    from ..group import run_group_level
    from .record import write_config_record

    if Path(config.output_dir).is_dir():  # else run_group_level says that no participant outputs exist
        LOGGER.debug("configuration: %s", write_config_record(config, argv))
    try:
        report = run_group_level(config)
    except LookupError as exc:
        raise AppError(str(exc), EXIT_NOTHING_SELECTED) from None
    print(f"dcequant: group report: {Path(report).resolve()}")
    return EXIT_OK


def _run(argv):
    config = parse_config(argv)
    setup_logging(config.verbose)
    if not Path(config.bids_dir).is_dir():
        raise AppError(f"bids_dir {config.bids_dir} is not a folder")
    if Path(config.output_dir).resolve() == Path(config.bids_dir).resolve():
        raise AppError("output_dir must differ from bids_dir")
    if not config.skip_bids_validation and config.analysis_level == "participant":
        if any(Path(config.bids_dir).glob("sub-*")):
            validate_bids(config.bids_dir)
        else:
            LOGGER.info("no raw subjects yet (DICOM only); BIDS validation skipped")
    if config.analysis_level == "participant":
        return run_participant(config, argv)
    return run_group(config, argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``dcequant``; returns the exit code."""
    try:
        return _run(argv)
    except AppError as exc:
        print(f"dcequant: error: {exc}", file=sys.stderr)
        return exc.code
    except ValueError as exc:
        print(f"dcequant: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
