"""One configuration object for a dcequant run.

Every command-line option of ``dcequant`` is a field of :class:`Config`, with the
same name as the option's destination (``--omp-nthreads`` -> ``omp_nthreads``). A
configuration file (``--config-file``, TOML or JSON) may set any of them; keys may be
written with hyphens or underscores. Precedence: built-in defaults < config file <
command line.

Example ``dcequant.toml``::

    models = ["extended_tofts", "patlak", "2cxm"]
    fit_delay = true
    hematocrit = 0.42
    aif = "parker"
    nprocs = 8
    omp_nthreads = 2
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .io_utils import read_option_file
from .nets.weights import shipped_networks
from .registry.kinetic import MODEL_NAMES

DEFAULT_MODELS = ("extended_tofts", "patlak")
T1_METHODS = ("vfa-linear", "vfa-nonlinear", "two-angle")
#: T1 validity rules (``bidsapp.t1.VALIDITY_RULES``): keep every physically valid fit, or
#: also drop fits whose relative residual exceeds 0.1
T1_VALIDITY = ("physical", "strict")
DEVICES = ("auto", "cpu", "cuda")
ANALYSIS_LEVELS = ("participant", "group")
#: contrast agent and field strength assumed (with a warning) when ``--relaxivity`` is not
#: given and the DCE sidecar lacks ``ContrastBolusAgent`` / ``MagneticFieldStrength``.
DEFAULT_AGENT = "gadobutrol"
DEFAULT_FIELD_STRENGTH = 3.0
DEFAULT_HEMATOCRIT = 0.45


#: ``--aif`` values that name a file (a table or an ROI mask) rather than a method
AIF_TABLE_SUFFIXES = (".tsv", ".csv")
AIF_MASK_SUFFIXES = (".nii", ".nii.gz")
AIF_FILE_SUFFIXES = AIF_TABLE_SUFFIXES + AIF_MASK_SUFFIXES
AIF_KINDS = ("auto", "population", "table", "mask")


@dataclass(frozen=True)
class AIFChoice:
    """The ``--aif`` option, parsed once (:meth:`parse`) into what it names.

    ``kind`` is ``auto`` (detected in the image), ``population`` (``value``: a name of
    :data:`bidsapp.POPULATION_AIFS`), ``table`` (``value``: absolute path of a TSV/CSV with
    ``time`` in s and ``plasma`` in mM) or ``mask`` (``value``: absolute path of a NIfTI ROI
    of arterial voxels). Paths may hold ``{subject}``/``{session}`` placeholders, filled in
    per session by :meth:`for_session`. ``str()`` gives the option's text.
    """

    kind: str = "auto"
    value: str = ""

    @classmethod
    def parse(cls, text):
        """Parse an ``--aif`` value; raise ``ValueError`` naming the option for anything else."""
        if isinstance(text, cls):
            return text
        text = str(text)
        if text == "auto":
            return cls("auto")
        if text.endswith(AIF_FILE_SUFFIXES):  # a file: absolute, like paths (nodes run in their own folders)
            kind = "table" if text.endswith(AIF_TABLE_SUFFIXES) else "mask"
            return cls(kind, str(Path(text).expanduser().absolute()))
        from .aif.population import POPULATION_AIFS

        if text in POPULATION_AIFS:
            return cls("population", text)
        raise ValueError(
            f"--aif {text!r}: not 'auto', a population AIF ({', '.join(POPULATION_AIFS)}), "
            "a .tsv/.csv table or a .nii[.gz] mask"
        )

    def for_session(self, subject, session):
        """Return the choice with ``{subject}``/``{session}`` filled in (labels without prefixes)."""
        if "{" not in self.value:
            return self
        return AIFChoice(self.kind, self.value.format(subject=subject, session=session or ""))

    @property
    def path(self):
        """The table or mask file (``None`` for ``auto`` and population AIFs)."""
        return Path(self.value) if self.kind in ("table", "mask") else None

    def __str__(self):
        """Return the option's text (the path or population name, or ``auto``)."""
        return self.value or self.kind


@dataclass
class Config:
    """All options of a run (units: s, /mM/s, fractions)."""

    # positionals
    bids_dir: Path | None = None
    output_dir: Path | None = None
    analysis_level: str | None = None
    # selection
    participant_label: list[str] = field(default_factory=list)
    session_label: list[str] = field(default_factory=list)
    bids_filter_file: Path | None = None
    skip_bids_validation: bool = False
    # execution
    work_dir: Path | None = None
    nprocs: int = 1
    omp_nthreads: int = 1
    mem: float | None = None
    use_plugin: Path | None = None
    stop_on_first_crash: bool = False
    resource_monitor: bool = False
    write_graph: bool = False
    boilerplate_only: bool = False
    reports_only: bool = False
    random_seed: int = 0
    verbose: int = 0
    device: str = "auto"
    # science
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    fit_delay: bool = False
    t1_method: str = "vfa-linear"
    t1_validity: str = "physical"
    t10: float | None = None
    b1_correction: bool = True
    motion_correction: bool = True
    fd_threshold: float = 0.5
    relaxivity: float | None = None
    hematocrit: float = DEFAULT_HEMATOCRIT
    baseline_frames: int | None = None
    aif: AIFChoice = field(default_factory=AIFChoice)
    roi: list[Path] = field(default_factory=list)
    group_config: Path | None = None
    nets: list[str] | None = None
    dose_fraction: float | None = None

    def __post_init__(self):
        """Parse ``aif`` into an :class:`AIFChoice`."""
        self.aif = AIFChoice.parse(self.aif)  # the one place --aif text becomes a typed value

    def validate(self):
        """Raise ``ValueError`` naming the option when a value is out of range."""
        unknown = [m for m in self.models if m not in MODEL_NAMES]
        if unknown or not self.models:
            raise ValueError(f"--models: unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
        checks = [
            (
                self.t1_method in T1_METHODS,
                f"--t1-method must be one of {T1_METHODS}, got {self.t1_method!r}",
            ),
            (
                self.t1_validity in T1_VALIDITY,
                f"--t1-validity must be one of {T1_VALIDITY}, got {self.t1_validity!r}",
            ),
            (self.device in DEVICES, f"--device must be one of {DEVICES}, got {self.device!r}"),
            (self.nprocs >= 1, f"--nprocs must be >= 1, got {self.nprocs}"),
            (self.omp_nthreads >= 1, f"--omp-nthreads must be >= 1, got {self.omp_nthreads}"),
            (self.mem is None or self.mem > 0, f"--mem must be > 0 GB, got {self.mem}"),
            (self.t10 is None or 0 < self.t10 < 10, f"--t10 must be in (0, 10) s, got {self.t10}"),
            (
                self.relaxivity is None or self.relaxivity > 0,
                f"--relaxivity must be > 0 /mM/s, got {self.relaxivity}",
            ),
            (0 <= self.hematocrit < 1, f"--hematocrit must be in [0, 1), got {self.hematocrit}"),
            (self.fd_threshold > 0, f"--fd-threshold must be > 0 mm, got {self.fd_threshold}"),
            (
                self.baseline_frames is None or self.baseline_frames >= 1,
                f"--baseline-frames must be >= 1, got {self.baseline_frames}",
            ),
            (
                self.dose_fraction is None or 0 < self.dose_fraction < 1,
                f"--dose-fraction must be in (0, 1), got {self.dose_fraction}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        unknown_nets = sorted(set(self.nets or ()) - set(shipped_networks()))
        if unknown_nets:
            raise ValueError(
                f"--nets: unknown network(s) {unknown_nets}; choose from {', '.join(shipped_networks())}"
            )
        return self

    def networks(self) -> list[str]:
        """Return the kinetic networks to run: ``--nets`` as given, all shipped ones when not given."""
        return shipped_networks() if self.nets is None else list(dict.fromkeys(self.nets))

    def to_dict(self):
        """JSON-serialisable dict of every option (paths as strings)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (Path, AIFChoice)):
                value = str(value)
            elif isinstance(value, list):
                value = [str(v) if isinstance(v, Path) else v for v in value]
            out[f.name] = value
        return out


_PATH_FIELDS = {"bids_dir", "output_dir", "bids_filter_file", "work_dir", "use_plugin", "group_config"}
_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def load_config_file(path):
    """Read a TOML (``.toml``) or JSON file into a dict of :class:`Config` fields.

    Raises ``ValueError`` naming the file and the key for unknown keys or bad syntax.
    """
    path = Path(path)
    data = read_option_file(path, "--config-file", tomllib.loads if path.suffix.lower() == ".toml" else None)
    options = {}
    for key, value in data.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ValueError(f"--config-file {path}: unknown option {key!r}")
        options[name] = value
    return options


def make_config(options):
    """Build a validated :class:`Config` from a dict of field values (``None`` = default)."""
    values = {}
    for name, value in options.items():
        if name not in _FIELDS:
            raise ValueError(f"unknown option {name!r}")
        if value is None:
            continue
        if name in _PATH_FIELDS:  # absolute: Nipype runs each node in its own working folder
            value = Path(value).expanduser().absolute()
        elif name == "roi":
            value = [Path(v).expanduser().absolute() for v in value]
        elif name in ("participant_label", "session_label"):
            value = [str(v) for v in value]
        values[name] = value
    return Config(**values).validate()
