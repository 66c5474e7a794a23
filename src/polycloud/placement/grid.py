"""The clusters as arrays: transfer prices and RTTs as matrices, the best offering per resource shape.

Everything here depends on the sites alone, never on one workload, so it is worked out once per plan and
shared by every workload's choices (`choices.py`). Each cell is the scalar model's own figure
(`sites.py`: `best_offering`, `hourly`, `transfer_usd_per_gb`, `rtt_ms`), evaluated once, so the arrays
hold exactly the floats the model defines; only their combinations are vectorised. (The RTT model's
trigonometry stays scalar: numpy's sin and cos may differ from the C library's in the last bit.)
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from polycloud.catalog import Catalog, Offering
from polycloud.placement.sites import Point, Site, best_offering, hourly, rtt_row_ms, transfer_usd_per_gb
from polycloud.spec.models import Resources

Floats = npt.NDArray[np.float64]
Flags = npt.NDArray[np.bool_]
Objects = npt.NDArray[np.object_]
QuotaKey = tuple[str, str]  # (cluster, accelerator lower-case)
ShapeKey = tuple[str | None, float, float, float, bool]
"""What picks an offering: accelerator as written, count, vCPUs, memory, and whether spot is asked for."""
Rate = tuple[float, float]
"""(scale, hours): a role's compute is `(scale * hourly price) * hours`, the model's own order of
operations — replicas and hours a month for services, nodes × hours and 1.0 for jobs."""


def objects(items: list[object]) -> Objects:
    """A 1-D object array of `items` (np.array would try to nest tuples such as quota keys)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


class SiteCosts(Mapping[str, float]):
    """Cluster → cost for the sites with an offering, the costs held in one array.

    `Problem.would_cost`: a large fleet has one per workload, and a dict of a hundred floats takes four
    times the memory. Read-only; `items()` pairs names and floats in C.
    """

    __slots__ = ("costs", "index", "names")

    def __init__(self, names: list[str], index: dict[str, int], costs: Floats) -> None:
        self.names = names
        self.index = index
        self.costs = costs

    def __getitem__(self, cluster: str) -> float:
        return float(self.costs[self.index[cluster]])

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def items(self) -> ItemsView[str, float]:
        return _Pairs(self)


class _Pairs(ItemsView[str, float]):
    def __init__(self, table: SiteCosts) -> None:
        super().__init__(table)
        self.table = table

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return zip(self.table.names, self.table.costs.tolist(), strict=True)


@dataclass(frozen=True, eq=False)
class Offers:
    """The cheapest offering of one resource shape in every site, column by column (site order).

    Absent offerings are `None` with price and count 0.0, so arithmetic over all sites stays finite; the
    `present` mask says which cells are real.
    """

    shape: ShapeKey
    offerings: Objects
    """`Offering | None` per site."""
    present: Flags
    where: list[str]
    """Names of the sites with an offering, in site order."""
    positions: dict[str, int]
    """Each of those names' position in `where`."""
    price: Floats
    """The hourly price paid: `hourly(offering, spot)`."""
    prices: Objects
    """The same prices as the offering's own float objects (shared, never copied into every choice)."""
    paid_spot: Objects
    """Whether the spot price is the one paid (spot asked for and known)."""
    count: Floats
    """Accelerators per instance."""
    keys: Objects
    """Quota key per site where the accelerator has a quota there, else None."""
    keyed: Flags
    cap: Floats
    """That quota as a float (0.0 where there is none; read only where `keyed`)."""
    caps: Objects
    """The quota as written (an int), for messages."""
    bare: dict[Rate, SiteCosts] = field(default_factory=dict)

    def active_costs(self, rate: Rate, egress: Floats | None, remember: bool) -> SiteCosts:
        """Cluster → the active role's cost in each site with an offering (`Problem.would_cost`).

        Without data to move it depends on the shape and rate alone, so services share one table.
        """
        if egress is None and rate in self.bare:
            return self.bare[rate]
        scale, hours = rate
        compute = (scale * self.price) * hours
        cost = compute + egress if egress is not None else compute + 0.0
        found = SiteCosts(self.where, self.positions, cost[self.present])
        if egress is None and remember:
            self.bare[rate] = found
        return found


class Grid:
    """Sites in fleet order with every per-site and per-site-pair figure the cost model needs."""

    def __init__(self, sites: dict[str, Site], catalog: Catalog) -> None:
        self.sites = list(sites.values())
        self.catalog = catalog
        self.index = {name: i for i, name in enumerate(sites)}
        self.order = list(sites)
        self.names = objects(list(sites))
        self.providers = {name: site.provider for name, site in sites.items()}
        """Cluster → provider, one dict shared by every problem (nothing writes to it)."""
        self.transfer = np.array(
            [[transfer_usd_per_gb(src, dst) for dst in self.sites] for src in self.sites], dtype=np.float64
        ).reshape(len(self.sites), len(self.sites))
        """transfer[i, j]: USD per GB moved from site i to site j."""
        self.points = [site.point for site in self.sites]
        self._rtt_rows: dict[Point, Floats] = {}
        self._offers: dict[ShapeKey, Offers] = {}

    def rtt_row(self, point: Point) -> Floats:
        """RTT in ms from `point` to every site (many workloads share a traffic source: remembered)."""
        row = self._rtt_rows.get(point)
        if row is None:
            row = np.array(rtt_row_ms(point, self.points, self.catalog), dtype=np.float64)
            self._rtt_rows[point] = row
        return row

    def offers(self, resources: Resources, spot: bool) -> Offers:
        """`best_offering` of this shape in every site; fleets repeat a few shapes many times."""
        # A plain tuple: hashing the pydantic model itself costs more than the lookup saves.
        key = (resources.accelerator, resources.accelerators, resources.vcpus, resources.memoryGiB, spot)
        found = self._offers.get(key)
        if found is None:
            found = self._tabulate(key, [best_offering(s, resources, spot=spot) for s in self.sites])
            self._offers[key] = found
        return found

    def _tabulate(self, shape: ShapeKey, best: list[Offering | None]) -> Offers:
        spot = shape[-1]
        caps = [
            site.quota(o.accelerator) if o is not None and o.accelerator else None
            for site, o in zip(self.sites, best, strict=True)
        ]
        keys = [
            (site.name, o.accelerator.lower()) if cap is not None and o and o.accelerator else None
            for site, o, cap in zip(self.sites, best, caps, strict=True)
        ]
        prices = [hourly(o, spot) if o is not None else 0.0 for o in best]
        where = [site.name for site, o in zip(self.sites, best, strict=True) if o is not None]
        return Offers(
            shape=shape,
            offerings=objects(list(best)),
            present=np.array([o is not None for o in best], dtype=bool),
            where=where,
            positions={name: i for i, name in enumerate(where)},
            price=np.array(prices, dtype=np.float64),
            prices=objects(list(prices)),
            paid_spot=objects([spot and o is not None and o.spot_hourly_usd is not None for o in best]),
            count=np.array([o.accelerator_count if o is not None else 0.0 for o in best], dtype=np.float64),
            keys=objects(list(keys)),
            keyed=np.array([k is not None for k in keys], dtype=bool),
            cap=np.array([float(c) if c is not None else 0.0 for c in caps], dtype=np.float64),
            caps=objects(list(caps)),
        )
