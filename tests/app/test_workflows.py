"""The stage modules of ``workflows/``: factory conventions and the session graph they build."""

import importlib
import inspect
import pkgutil

import pytest

import workflows
from bidsapp.bids_query import collect_sessions
from bidsapp.cli.run import parse_config

MODULES = sorted(m.name for m in pkgutil.iter_modules(workflows.__path__) if m.name != "interfaces")
FACTORIES = [
    (module, name)
    for module in MODULES
    for name, obj in vars(importlib.import_module(f"workflows.{module}")).items()
    if name.startswith("init_")
    and name.endswith("_wf")
    and inspect.isfunction(obj)
    and obj.__module__ == f"workflows.{module}"
]


def test_one_module_per_stage():
    assert set(MODULES) == {
        "base",
        "dicom",
        "motion",
        "t1map",
        "concentration",
        "aif",
        "fit",
        "outputs",
        "dose",
        "nets",
    }
    assert {m for m, _ in FACTORIES} == set(MODULES)


@pytest.mark.parametrize("module,name", FACTORIES)
def test_factories_take_keywords_and_document_their_ports(module, name):
    factory = getattr(importlib.import_module(f"workflows.{module}"), name)
    params = inspect.signature(factory).parameters
    assert "name" in params, f"{name}: no name= keyword"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), (
        f"{name}: positional parameters"
    )
    doc = inspect.getdoc(factory)
    sections = ["Parameters\n----------"] + (
        ["Inputs\n------", "Outputs\n-------"] if module != "base" else []
    )
    for section in sections:
        assert section in doc, f"{name}: no {section.splitlines()[0]} section"
    documented = {n for line in doc.splitlines() if " : " in line for n in line.split(" : ")[0].split(", ")}
    assert set(params) <= documented, f"{name}: undocumented parameters {set(params) - documented}"


def test_session_graph_has_every_stage_with_its_methods_text(tiny_study, tmp_path):
    from workflows.base import init_participant_wf

    config = parse_config(
        [
            str(tiny_study),
            str(tmp_path / "out"),
            "participant",
            "--models",
            "tofts",
            "patlak",
            "--aif",
            "parker",
        ]
    )
    sessions = collect_sessions(tiny_study, ["01"], ["01"])
    wf = init_participant_wf(config=config, sessions=sessions, work_dir=tmp_path / "work")
    nodes = set(wf.list_node_names())
    prefix = "sub_01_wf.ses_01_wf."
    for node in (
        "motion_wf.motion",
        "t1map_wf.vfa_t1",
        "concentration_wf.concentration",
        "aif_wf.aif",
        "fit_tofts_wf.fit",
        "fit_patlak_wf.fit",
        "nets_wf.infer",
        "outputs_wf.datasink",
    ):
        assert prefix + node in nodes, node
    assert {"sub_01_wf.outputs_wf.commit", "sub_01_wf.outputs_wf.report"} <= nodes
    session_wf = wf.get_node("sub_01_wf").get_node("ses_01_wf")
    aif_node = session_wf.get_node("aif_wf").get_node("aif")
    assert (aif_node.inputs.aif_kind, aif_node.inputs.aif_value) == ("population", "parker")
    sink = session_wf.get_node("outputs_wf").get_node("datasink")
    assert sink.inputs.t1_method == "vfa-linear" and sink.inputs.session == "01"
    assert session_wf.get_node("nets_wf").get_node("infer").inputs.nets == ["cnn", "punet"]
    for stage in ("motion_wf", "t1map_wf", "concentration_wf", "aif_wf", "fit_tofts_wf", "nets_wf"):
        assert session_wf.get_node(stage).__desc__, f"{stage}: no methods text"
