"""The package version: one definition, imported by the facade and by everything that stamps it."""

__version__ = "0.1.0"
