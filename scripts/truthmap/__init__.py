"""truthmap: where does an LLM know that its own answer is wrong?

The package is deliberately light: importing it (or the plotting, probe and
label modules) never imports torch. Only ``models``, ``generation`` and
``activations`` need it.
"""

__version__ = "0.1.0"
