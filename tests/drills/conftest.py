"""The end-to-end fixtures of `tests/e2e` (a fresh home, free ports, `polycloud down` at teardown)."""

from tests.e2e.conftest import polycloud

__all__ = ["polycloud"]
