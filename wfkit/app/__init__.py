"""The application layer: what a person runs rather than imports.

``cli`` (the ``wfkit`` command), ``spec`` (YAML workflow specs), ``demo`` (the Gapminder
workflow), ``showcase`` (``wfkit demo``: the demo plus its executed notebook as HTML),
``report`` (an HTML report of a run store) and ``jsonout`` (run results as JSON). These modules
sit above the library and import from it; nothing in the library imports them.
"""
