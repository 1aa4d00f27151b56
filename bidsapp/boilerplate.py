"""Methods boilerplate ("citation boilerplate") of a run, written to ``logs/CITATION.md``.

Each workflow factory of the stage modules in :mod:`workflows` sets ``workflow.__desc__`` (a
methods paragraph with ``[@key]`` citations) and ``workflow.__refs__`` (the keys). This
module walks the built workflow graph in a stable order, keeps every distinct
paragraph once, and appends the references of the one bibliography
(:mod:`bidsapp.registry.references`) — as fMRIPrep and ASLPrep do.
"""

from __future__ import annotations

import re
from pathlib import Path

from .io_utils import write_text_atomic
from .registry.references import REFERENCES

#: a citation in a ``__desc__``: ``[@key]`` or ``[@key1; @key2]``
_CITATION = re.compile(r"\[(@[\w-]+(?:; *@[\w-]+)*)\]")


def _ordered_workflows(workflow):
    """Return the workflow and its sub-workflows, depth first, in a stable topological order."""
    import networkx as nx
    from nipype.pipeline.engine import Workflow

    yield workflow
    graph = workflow._graph
    for node in nx.lexicographical_topological_sort(graph, key=lambda n: n.fullname):
        if isinstance(node, Workflow):
            yield from _ordered_workflows(node)


def collect_methods(workflow):
    """Return ``(paragraphs, reference_keys)`` gathered from ``__desc__``/``__refs__``."""
    paragraphs, refs = [], []
    for wf in _ordered_workflows(workflow):
        desc = getattr(wf, "__desc__", None)
        if desc and desc not in paragraphs:
            paragraphs.append(desc)
        for key in getattr(wf, "__refs__", []):
            if key not in refs:
                refs.append(key)
    return paragraphs, refs


def methods_markdown(workflow):
    """Return the methods section (markdown) with its numbered reference list."""
    paragraphs, refs = collect_methods(workflow)
    numbers = {key: i for i, key in enumerate(refs, start=1)}
    text = _CITATION.sub(lambda m: _numbered(m, numbers), "\n\n".join(paragraphs))
    references = "\n".join(f"{numbers[key]}. {REFERENCES[key].text}" for key in refs)
    return f"# Methods\n\n{text}\n\n## References\n\n{references}\n"


def _numbered(match, numbers):
    """``[1, 2]`` for a citation ``[@key1; @key2]`` whose keys are all numbered, else unchanged."""
    keys = [k.strip()[1:] for k in match.group(1).split(";")]
    if not all(k in numbers for k in keys):
        return match.group(0)
    return "[" + ", ".join(str(numbers[k]) for k in keys) + "]"


def write_citation(output_dir, workflow):
    """Write ``<output_dir>/logs/CITATION.md``; return its path."""
    path = Path(output_dir) / "logs" / "CITATION.md"
    write_text_atomic(path, methods_markdown(workflow))
    return path
