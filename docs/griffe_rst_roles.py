"""Griffe extension for the API reference: Sphinx roles in docstrings as code spans.

The docstrings cross-reference with Sphinx roles (``:func:`fit_model```); mkdocstrings
renders Markdown, where those would print literally. Each role becomes a code span of its
target (``~`` dropped), e.g. ``:func:`~bidsapp.models.model_curve``` -> ```bidsapp.models.model_curve```.
"""

import re

import griffe

ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|obj|exc):`~?([^`]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring as Markdown code spans."""

    def on_instance(self, *, node, obj, agent, **kwargs):
        """Rewrite the docstring of ``obj`` once it is loaded."""
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: f"`{m.group(1)}`", obj.docstring.value)
