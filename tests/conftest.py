"""Suite-wide: the end-to-end tests run first.

`make test` spreads tests over xdist workers in collection order. The end-to-end tests take seconds to
a minute each and mostly wait on processes; started first, they overlap one another and the quick unit
tests fill the workers' gaps at the end, instead of a few long tests running alone after everything
else (measured: the suite's last minutes were single end-to-end tests on an otherwise idle machine).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)  # stable: order kept within each
