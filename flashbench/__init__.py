"""FlashBench: trajectory-control video benchmark."""
__version__ = "0.1.0"
