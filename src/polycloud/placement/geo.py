"""Distances and round-trip times (DESIGN.md §4: `rttMs = 5 + greatCircleKm / 60`)."""

from __future__ import annotations

import math
from collections.abc import Iterable

EARTH_RADIUS_KM = 6371.0
RTT_BASE_MS = 5.0
KM_PER_MS = 60.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    return great_circle_row_km(lat1, lon1, [(lat2, lon2)])[0]


def great_circle_row_km(lat1: float, lon1: float, others: Iterable[tuple[float, float]]) -> list[float]:
    """Haversine distances in kilometres from one place to many (the planner's RTT matrix: one call per
    row rather than per cell, the same operations in the same order for every cell)."""
    p1 = math.radians(lat1)
    cos_p1 = math.cos(p1)
    sin, cos, radians, asin, sqrt = math.sin, math.cos, math.radians, math.asin, math.sqrt
    out = []
    for lat2, lon2 in others:
        p2 = radians(lat2)
        dp, dl = p2 - p1, radians(lon2 - lon1)
        h = sin(dp / 2) ** 2 + cos_p1 * cos(p2) * sin(dl / 2) ** 2
        out.append(2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h))))
    return out


def modelled_rtt_ms(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Round-trip time predicted from distance alone (calibrated on the catalog's measured pairs)."""
    return RTT_BASE_MS + great_circle_km(lat1, lon1, lat2, lon2) / KM_PER_MS


def modelled_rtt_row_ms(lat1: float, lon1: float, others: Iterable[tuple[float, float]]) -> list[float]:
    """`modelled_rtt_ms` from one place to many."""
    return [RTT_BASE_MS + km / KM_PER_MS for km in great_circle_row_km(lat1, lon1, others)]
