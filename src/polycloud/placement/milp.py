"""A small builder over HiGHS for 0/1 programs: add variables and rows, solve exactly."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field

import highspy
import numpy as np

INF = highspy.kHighsInf


@functools.cache
def _banner_shown() -> None:
    """Create the process's first HiGHS object with stdout closed: HiGHS prints a licence banner on
    file descriptor 1 the first time, which would corrupt `plan --json`."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@dataclass
class Outcome:
    """Result of one solve: `values` is None when the program is infeasible."""

    values: list[float] | None
    objective: float


@dataclass
class BinaryProgram:
    """Minimise `cost · x` over binary `x` subject to `lo <= A x <= hi` rows."""

    costs: list[float] = field(default_factory=list)
    rows: list[tuple[list[int], list[float], float, float]] = field(default_factory=list)

    def var(self, cost: float) -> int:
        self.costs.append(cost)
        return len(self.costs) - 1

    def row(self, index: list[int], coef: list[float], lo: float = -INF, hi: float = INF) -> None:
        if index:
            self.rows.append((index, coef, lo, hi))

    def solve(self, *, relax: bool = False) -> Outcome:
        """Solve to proven optimality (relative gap 0), or the LP relaxation when `relax`."""
        _banner_shown()
        h = highspy.Highs()  # type: ignore[no-untyped-call]
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 0.0)
        h.setOptionValue("mip_abs_gap", 1e-7)
        h.setOptionValue("threads", 1)
        h.passModel(self._lp(relax))
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            return Outcome(None, float("inf"))
        values = list(h.getSolution().col_value)
        return Outcome(values, float(h.getInfo().objective_function_value))

    def _lp(self, relax: bool) -> highspy.HighsLp:
        n, m = len(self.costs), len(self.rows)
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = m
        lp.col_cost_ = np.asarray(self.costs, dtype=np.float64)
        lp.col_lower_ = np.zeros(n)
        lp.col_upper_ = np.ones(n)
        lp.row_lower_ = np.asarray([r[2] for r in self.rows], dtype=np.float64)
        lp.row_upper_ = np.asarray([r[3] for r in self.rows], dtype=np.float64)
        starts = np.zeros(m + 1, dtype=np.int32)
        starts[1:] = np.cumsum([len(r[0]) for r in self.rows])
        matrix = lp.a_matrix_
        matrix.format_ = highspy.MatrixFormat.kRowwise
        matrix.num_col_ = n
        matrix.num_row_ = m
        matrix.start_ = starts
        matrix.index_ = np.asarray([i for r in self.rows for i in r[0]], dtype=np.int32)
        matrix.value_ = np.asarray([v for r in self.rows for v in r[1]], dtype=np.float64)
        if not relax:
            lp.integrality_ = [highspy.HighsVarType.kInteger] * n
        return lp
