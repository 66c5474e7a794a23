"""Tests of the placement model and optimiser (DESIGN.md §4)."""
