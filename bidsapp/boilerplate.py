"""Methods boilerplate ("citation boilerplate") of a run, written to ``logs/CITATION.md``.

Each workflow factory of the stage modules in :mod:`workflows` sets ``workflow.__desc__`` (a
methods paragraph with ``[@key]`` citations) and ``workflow.__refs__`` (the keys). This
module walks the built workflow graph in a stable order, keeps every distinct
paragraph once, and appends the references — as fMRIPrep and ASLPrep do.
"""

from __future__ import annotations

from pathlib import Path

from .io_utils import write_text_atomic

REFERENCES = {
    "nipype1": "Gorgolewski K, et al. Nipype: a flexible, lightweight and extensible neuroimaging data "
               "processing framework in Python. Front Neuroinform 2011;5:13. doi:10.3389/fninf.2011.00013",
    "pybids": "Yarkoni T, et al. PyBIDS: Python tools for BIDS datasets. J Open Source Softw 2019;4(40):1294. "
              "doi:10.21105/joss.01294",
    "dcm2niix": "Li X, Morgan PS, Ashburner J, Smith J, Rorden C. The first step for neuroimaging data analysis: "
                "DICOM to NIfTI conversion. J Neurosci Methods 2016;264:47-56. doi:10.1016/j.jneumeth.2016.03.001",
    "deoni2003": "Deoni SCL, Rutt BK, Peters TM. Rapid combined T1 and T2 mapping using gradient recalled "
                 "acquisition in the steady state. Magn Reson Med 2003;49:515-526. doi:10.1002/mrm.10407",
    "schabel2008": "Schabel MC, Parker DL. Uncertainty and bias in contrast concentration measurements using "
                   "spoiled gradient echo pulse sequences. Phys Med Biol 2008;53:2345-2373. "
                   "doi:10.1088/0031-9155/53/9/010",
    "parker2006": "Parker GJM, et al. Experimentally-derived functional form for a population-averaged "
                  "high-temporal-resolution arterial input function for dynamic contrast-enhanced MRI. "
                  "Magn Reson Med 2006;56:993-1000. doi:10.1002/mrm.21066",
    "tofts1999": "Tofts PS, et al. Estimating kinetic parameters from dynamic contrast-enhanced T1-weighted MRI "
                 "of a diffusable tracer: standardized quantities and symbols. J Magn Reson Imaging "
                 "1999;10:223-232. doi:10.1002/(SICI)1522-2586(199909)10:3<223::AID-JMRI2>3.0.CO;2-S",
    "patlak1983": "Patlak CS, Blasberg RG, Fenstermacher JD. Graphical evaluation of blood-to-brain transfer "
                  "constants from multiple-time uptake data. J Cereb Blood Flow Metab 1983;3:1-7. "
                  "doi:10.1038/jcbfm.1983.1",
    "sourbron2011": "Sourbron SP, Buckley DL. On the scope and interpretation of the Tofts models for DCE-MRI. "
                    "Magn Reson Med 2011;66:735-745. doi:10.1002/mrm.22861",
    "sourbron2013": "Sourbron SP, Buckley DL. Classic models for dynamic contrast-enhanced MRI. NMR Biomed "
                    "2013;26:1004-1027. doi:10.1002/nbm.2940",
    "simpleitk": "Lowekamp BC, Chen DT, Ibáñez L, Blezek D. The design of SimpleITK. Front Neuroinform "
                 "2013;7:45. doi:10.3389/fninf.2013.00045",
    "power2012": "Power JD, Barnes KA, Snyder AZ, Schlaggar BL, Petersen SE. Spurious but systematic "
                 "correlations in functional connectivity MRI networks arise from subject motion. NeuroImage "
                 "2012;59:2142-2154. doi:10.1016/j.neuroimage.2011.10.018",
}


def _ordered_workflows(workflow):
    """The workflow and its sub-workflows, depth first, in a stable topological order."""
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
    """The methods section (markdown) with its numbered reference list."""
    paragraphs, refs = collect_methods(workflow)
    numbers = {key: i for i, key in enumerate(refs, start=1)}
    text = "\n\n".join(paragraphs)
    for key, number in numbers.items():
        text = text.replace(f"[@{key}]", f"[{number}]")
    references = "\n".join(f"{numbers[key]}. {REFERENCES[key]}" for key in refs)
    return f"# Methods\n\n{text}\n\n## References\n\n{references}\n"


def write_citation(output_dir, workflow):
    """Write ``<output_dir>/logs/CITATION.md``; return its path."""
    path = Path(output_dir) / "logs" / "CITATION.md"
    write_text_atomic(path, methods_markdown(workflow))
    return path
