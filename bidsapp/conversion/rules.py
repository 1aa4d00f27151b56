r"""User rules: override the automatic role of a series and add sidecar fields.

A rules file is JSON::

    {
      "rules": [
        {"name": "T2 TSE is anatomy", "match": {"SeriesDescription": "*t2_tse*"}, "role": "T2w"},
        {"match": {"SeriesNumber": [12, 13]}, "role": "ignore"},
        {"match": {"ProtocolName": "re:^vfa_\\d+$"}, "role": "vfa"},
        {"match": {"AutoRole": "dce"}, "sidecar": {"ContrastBolusAgent": "gadobutrol"}}
      ]
    }

``match`` maps a DICOM keyword (any attribute of the series' first header, e.g.
``SeriesDescription``, ``ImageType``, ``RepetitionTime`` in ms as stored) or a derived
field (``NumberOfVolumes``, ``NumberOfSlices``, ``AutoRole``) to a pattern; all entries
must match. Patterns: a string is a case-insensitive shell glob (``*``, ``?``), or a
regular expression after ``re:``; a number matches numerically (±1e-6 relative); a list
matches if any element does; ``{"min": a, "max": b}`` is a numeric range; ``null``
matches a missing field. Multi-valued fields (ImageType) match if the whole value
(joined with ``\``) or any single value matches.

The first rule with a ``role`` that matches decides the role; the ``sidecar`` objects
of every matching rule are merged into that series' BIDS sidecar, later rules winning
(values from DICOM are replaced by them).
"""

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("dce", "dce-lowdose", "vfa", "T1w", "T2w", "FLAIR", "TB1map", "other", "ignore")
_RULE_KEYS = {"name", "match", "role", "sidecar"}


@dataclass
class Rule:
    """One user rule (see module docstring)."""

    match: dict
    role: str | None = None
    sidecar: dict = field(default_factory=dict)
    name: str = ""


def _check_pattern(where, pattern):
    if isinstance(pattern, dict):
        extra = set(pattern) - {"min", "max"}
        if extra or not pattern:
            raise ValueError(f"{where}: a range pattern takes only 'min' and 'max', got {sorted(pattern)}")
    elif isinstance(pattern, list):
        for item in pattern:
            _check_pattern(where, item)
    elif isinstance(pattern, str) and pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except re.error as exc:
            raise ValueError(f"{where}: bad regular expression {pattern[3:]!r}: {exc}") from None
    elif pattern is not None and not isinstance(pattern, (str, int, float)):
        raise ValueError(f"{where}: unsupported pattern {pattern!r}")


def parse_rules(config, source="config"):
    """Validate a rules mapping (parsed JSON) and return a list of :class:`Rule`."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: top level must be a JSON object with a 'rules' list")
    unknown = set(config) - {"rules"}
    if unknown:
        raise ValueError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'rules'")
    rules = []
    for i, raw in enumerate(config.get("rules", [])):
        where = f"{source}: rules[{i}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be an object")
        extra = set(raw) - _RULE_KEYS
        if extra:
            raise ValueError(f"{where}: unknown key(s) {sorted(extra)}; allowed {sorted(_RULE_KEYS)}")
        match = raw.get("match")
        if not isinstance(match, dict):
            raise ValueError(f"{where}: 'match' must be an object of DICOM keyword -> pattern")
        for key, pattern in match.items():
            _check_pattern(f"{where}.match.{key}", pattern)
        role = raw.get("role")
        if role is not None and role not in ROLES:
            raise ValueError(f"{where}: role {role!r} is not one of {ROLES}")
        sidecar = raw.get("sidecar", {})
        if not isinstance(sidecar, dict):
            raise ValueError(f"{where}: 'sidecar' must be an object")
        if role is None and not sidecar:
            raise ValueError(f"{where}: a rule needs a 'role', a 'sidecar', or both")
        rules.append(Rule(match=match, role=role, sidecar=sidecar, name=str(raw.get("name", f"rules[{i}]"))))
    return rules


def load_rules(config):
    """Rules from ``None`` (no rules), a mapping, or a path to a JSON file."""
    if config is None:
        return []
    if isinstance(config, dict):
        return parse_rules(config)
    if isinstance(config, (list, tuple)) and all(isinstance(r, Rule) for r in config):
        return list(config)
    path = Path(config)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"--config {path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config {path}: invalid JSON ({exc})") from None
    return parse_rules(data, source=str(path))


def _values(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        items = [str(v) for v in value]
        return ["\\".join(items), *items]
    return [str(value)]


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def pattern_matches(pattern, value):
    """Return True when ``value`` (a DICOM value, None if absent) matches ``pattern``."""
    if isinstance(pattern, list):
        return any(pattern_matches(p, value) for p in pattern)
    if pattern is None:
        return value is None or value == ""
    if value is None or value == "":
        return False
    if isinstance(pattern, dict):
        num = _number(value)
        return num is not None and pattern.get("min", -float("inf")) <= num <= pattern.get(
            "max", float("inf")
        )
    if isinstance(pattern, (int, float)) and not isinstance(pattern, bool):
        num = _number(value)
        return num is not None and abs(num - pattern) <= 1e-6 * max(1.0, abs(pattern))
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:], re.IGNORECASE)
        return any(rx.search(v) for v in _values(value))
    return any(fnmatch.fnmatchcase(v.lower(), pattern.lower()) for v in _values(value))


def rule_matches(rule, fields):
    """Return True when every entry of ``rule.match`` matches ``fields`` (callable key -> value)."""
    return all(pattern_matches(pattern, fields(key)) for key, pattern in rule.match.items())


def apply_rules(rules, fields):
    """``(role or None, rule name or None, merged sidecar)`` for one series."""
    role, name, sidecar = None, None, {}
    for rule in rules:
        if not rule_matches(rule, fields):
            continue
        if role is None and rule.role is not None:
            role, name = rule.role, rule.name
        sidecar.update(rule.sidecar)
    return role, name, sidecar
