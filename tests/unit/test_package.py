import bidsapp


def test_version_is_exposed():
    assert isinstance(bidsapp.__version__, str) and bidsapp.__version__.count(".") == 2


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        _ = bidsapp.no_such_function


def test_type_checking_imports_match_the_lazy_exports():
    """The ``if TYPE_CHECKING:`` block types exactly the lazily exported names, from their modules."""
    import ast
    from pathlib import Path

    tree = ast.parse(Path(bidsapp.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    typed = {
        alias.name: f"bidsapp{node.module and '.' + node.module}"
        for node in block.body
        for alias in node.names
    }
    assert typed == bidsapp._EXPORTS


def test_public_callables_are_annotated():
    import inspect

    for name in bidsapp.__all__:
        value = getattr(bidsapp, name)
        if inspect.isfunction(value):
            sig = inspect.signature(value)
            missing = [
                p
                for p, par in sig.parameters.items()
                if par.annotation is inspect.Parameter.empty and par.kind not in (par.VAR_KEYWORD,)
            ]
            assert not missing and sig.return_annotation is not inspect.Signature.empty, (name, missing)
