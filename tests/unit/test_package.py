import bidsapp


def test_version_is_exposed():
    assert isinstance(bidsapp.__version__, str) and bidsapp.__version__.count(".") == 2


def test_unknown_attribute_raises():
    import pytest

    with pytest.raises(AttributeError):
        bidsapp.no_such_function
