"""semgkit: scaling and distilling transformer models for sEMG, as a library and a book."""

__version__ = "0.1.0"
