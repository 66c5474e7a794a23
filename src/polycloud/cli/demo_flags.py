"""The feature-flag part of `polycloud demo`: ask the gateway over OFREP, as an OpenFeature SDK's OFREP
provider would, for `examples/flags`' `new-ranker` (EU callers get it, elsewhere 30 % of users)."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.table import Table

from polycloud.cli.common import out

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "flags"
FLAG = "new-ranker"
USERS = 2000
"""Targeting keys evaluated to show the percentage split."""
CONTEXTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("a user in the EU", {"targetingKey": "user-1", "region": "eu"}),
    ("user-1 elsewhere", {"targetingKey": "user-1"}),
    ("user-2 elsewhere", {"targetingKey": "user-2"}),
    ("no targetingKey", {}),
)


def evaluate(http: httpx.Client, gateway: str, context: dict[str, Any], flag: str = FLAG) -> dict[str, Any]:
    """One OFREP evaluation of `flag` for `context` at `gateway`: the answer's JSON (with its status)."""
    answer = http.post(f"{gateway}/ofrep/v1/evaluate/flags/{flag}", json={"context": context})
    return {"status": answer.status_code, **answer.json()}


def wait_for_flag(http: httpx.Client, gateway: str, timeout_s: float = 15.0) -> None:
    """Until the gateway's route table holds the flag (it follows the store every half second)."""
    deadline = time.monotonic() + timeout_s
    while evaluate(http, gateway, {})["status"] == 404 and time.monotonic() < deadline:
        time.sleep(0.2)


def flags_through_gateway(http: httpx.Client, gateway: str) -> Counter[str]:
    """Evaluate the flag for a few contexts, then for `USERS` users; print both; return the split."""
    wait_for_flag(http, gateway)
    table = Table(title=f"POST {gateway}/ofrep/v1/evaluate/flags/{FLAG}")
    for column in ("context", "value", "variant", "reason"):
        table.add_column(column)
    for label, context in CONTEXTS:
        answer = evaluate(http, gateway, context)
        value = answer.get("value", f"(error {answer.get('errorCode')})")
        table.add_row(label, str(value), str(answer.get("variant", "")), str(answer.get("reason", "")))
    out.print(table)
    split = Counter(
        str(evaluate(http, gateway, {"targetingKey": f"user-{i}"}).get("variant")) for i in range(USERS)
    )
    shares = ", ".join(f"{variant} {100 * n / USERS:.1f} %" for variant, n in sorted(split.items()))
    sigmas = 300 * math.sqrt(0.3 * 0.7 / USERS)  # three standard deviations of a 30 % share, in points
    out.print(
        f"{USERS} users outside the EU: {shares} (a 30/70 `fractional`: 30 % ± {sigmas:.1f} points at "
        "3σ; every gateway and flagd put each user in the same bucket). `polycloud flags list` shows "
        f"these shares; `polycloud flags disable {FLAG}` is the kill switch."
    )
    return split
