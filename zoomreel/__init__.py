"""zoomreel: zoom videos into the fractal boundary of neural-network trainability."""

__version__ = "0.1.0"
