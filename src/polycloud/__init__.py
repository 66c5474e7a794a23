"""polycloud: run AI inference and training across clouds and on-prem sites as one fleet."""

__version__ = "0.1.0"
