"""Distances and round-trip times (DESIGN.md §4: `rttMs = 5 + greatCircleKm / 60`)."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
RTT_BASE_MS = 5.0
KM_PER_MS = 60.0


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def modelled_rtt_ms(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Round-trip time predicted from distance alone (calibrated on the catalog's measured pairs)."""
    return RTT_BASE_MS + great_circle_km(lat1, lon1, lat2, lon2) / KM_PER_MS
