"""Per-subject progress of a Nipype run.

Interactive runs (stderr is a terminal and ``CI`` is unset) get one line per event,
``[sub-01] 5/12 steps  (ses-1: fit_patlak done)``; otherwise (HPC jobs, CI, pipes) the
same events go to the plain log at INFO level.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import Counter

LOGGER = logging.getLogger("dcequant")


def interactive(stream=None):
    """Return True when progress lines should be drawn on ``stream`` (default stderr)."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


def _subject_of(fullname):
    for part in fullname.split("."):
        if part.startswith("sub_") and part.endswith("_wf"):
            return "sub-" + part[4:-3]
    return None


def _step_of(fullname):
    parts = fullname.split(".")
    where = [p[:-3] for p in parts if p.startswith("ses_") and p.endswith("_wf")]
    stage = next((p[:-3] for p in reversed(parts[:-1]) if p.endswith("_wf")), "")
    step = f"{stage}.{parts[-1]}" if stage and not stage.startswith(("sub_", "ses_")) else parts[-1]
    return (where[0].replace("ses_", "ses-") + ": " if where else "") + step


def _runnable_nodes(workflow, prefix=""):
    """Full names of the nodes that will run (Nipype drops identity nodes when flattening)."""
    from nipype.interfaces.utility import IdentityInterface
    from nipype.pipeline.engine import Workflow

    prefix = f"{prefix}{workflow.name}."
    for node in workflow._graph.nodes():
        if isinstance(node, Workflow):
            yield from _runnable_nodes(node, prefix)
        elif not isinstance(node.interface, IdentityInterface):
            yield prefix + node.name


class Progress:
    """Nipype ``status_callback``: counts finished nodes per subject.

    ``totals`` maps ``sub-<L>`` to its number of runnable nodes.
    """

    def __init__(self, totals, stream=None, interactive_mode=None):
        self.totals = dict(totals)
        self.done = Counter()
        self.stream = stream or sys.stderr
        self.interactive = interactive(self.stream) if interactive_mode is None else interactive_mode
        self._lock = threading.Lock()
        self._started = set()

    @classmethod
    def for_workflow(cls, workflow, **kwargs):
        """Count the runnable (non-identity) nodes of each subject in ``workflow``."""
        totals = Counter(_subject_of(name) for name in _runnable_nodes(workflow))
        return cls(totals, **kwargs)

    def __call__(self, node, status):
        """Record a node ``status`` (``start``, ``end`` or ``exception``) and redraw the progress."""
        subject = _subject_of(node.fullname)
        with self._lock:
            if status == "start":
                self._started.add(node.fullname)
            elif status == "end" and node.fullname not in self._started:
                status = "skipped"  # the Linear plugin reports nodes downstream of a failure as ended
            if status in ("end", "exception", "skipped"):
                self.done[subject] += 1
            word = {"start": "started", "end": "done", "exception": "FAILED"}.get(status, status)
            line = (
                f"[{subject or 'dcequant'}] {self.done[subject]}/{self.totals.get(subject, '?')} steps  "
                f"({_step_of(node.fullname)} {word})"
            )
            if self.interactive:
                print(line, file=self.stream, flush=True)
            elif status != "start":
                LOGGER.info(line)
