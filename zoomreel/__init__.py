"""zoomreel: zoom videos into the fractal boundary of neural-network trainability.

Importing zoomreel changes nothing global: whoever trains calls
:func:`zoomreel.engine.configure` (the CLI does, once per process).
"""

__version__ = "0.1.0"
