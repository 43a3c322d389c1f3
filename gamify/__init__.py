"""gamify: gamified customer engagement for loyalty programs."""

__version__ = "0.1.0"
