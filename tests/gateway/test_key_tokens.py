"""Token limits of inference keys at the gateway: the minute window, the monthly token quota, the
Retry-After values, reservations for requests in flight, and the 5 % bound under steady load (in
simulated time: no sleeps)."""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import heapq
import math
import random
import statistics
from collections.abc import Callable

import pytest

from polycloud.gateway.keys import (
    MINUTE_S,
    RESERVATION_S,
    SLOT_S,
    Denial,
    KeyGuard,
    MinuteWindow,
    TokenUse,
    seconds_to_next_month,
)

from .test_keys import KEY, MONTH, NOV_15, Clock, FakeSource, bearer, guard, limits


def retry_after(denial: Denial | None) -> int:
    assert denial is not None and denial.status == 429
    return int(dict(denial.headers)[b"retry-after"])


# -- the minute window -------------------------------------------------------------------------------


def test_tokens_count_for_a_minute_and_at_most_a_slot_more() -> None:
    window = MinuteWindow()
    window.add(100.0, 600)
    window.add(110.1, 500)
    assert window.used(110.1) == 1100
    assert window.used(100.0 + MINUTE_S) == 1100  # a minute later, still counted...
    assert window.used(100.0 + SLOT_S + MINUTE_S) == 500  # ...until its slot's end is a minute old
    assert window.used(110.0 + SLOT_S + MINUTE_S) == 0


def test_the_wait_is_until_enough_of_the_window_has_left() -> None:
    window = MinuteWindow()
    window.add(100.0, 600)
    window.add(110.0, 300)
    window.add(120.0, 300)
    assert window.wait(125.0, 1500) == 0.0  # 1200 < 1500 already
    assert window.wait(125.0, 1000) == pytest.approx(100.25 + MINUTE_S - 125.0)  # once the 600 leave
    assert window.wait(125.0, 500) == pytest.approx(110.25 + MINUTE_S - 125.0)  # and the first 300
    assert window.wait(125.0, 1) == pytest.approx(120.25 + MINUTE_S - 125.0)  # all of them


def test_a_correction_lands_in_the_slot_of_the_admission_or_now_when_that_has_left() -> None:
    window = MinuteWindow()
    window.add(100.0, 100)  # an estimate made at admission
    window.add(101.0, 5)
    window.add(130.0, 40, at=100.0)  # the answer used 140: corrected where it was admitted
    assert [slot[1] for slot in window.slots] == [140, 5]
    window.add(200.0, 70, at=100.0)  # admitted over a minute ago: counted now
    assert window.used(200.0) == 70


def test_a_key_estimates_requests_in_flight_at_its_mean_answer_size() -> None:
    use = TokenUse()
    use.reserve(0.0)  # no answer seen yet: nothing to estimate
    use.spend(1.0, 100)
    assert use.window.used(1.0) == 100 and use.mean == 100
    use.reserve(2.0)
    use.reserve(2.0)
    assert use.held(2.0) == 200 and use.window.used(2.0) == 300
    use.spend(3.0, 150)  # no reservation named: replaces the oldest estimate (100) with 150
    assert use.held(3.0) == 100 and use.window.used(3.0) == 350
    assert use.mean == pytest.approx(125.0)  # a plain mean of the first answers
    assert use.held(2.0 + RESERVATION_S) == 0.0  # never spent (its answer failed): it lapses


def test_an_answer_replaces_its_own_requests_estimate() -> None:
    use = TokenUse()
    use.spend(0.0, 100)
    first, second = use.reserve(10.0), use.reserve(20.0)
    assert first is not None and second is not None
    use.spend(25.0, 40, second)  # the second request ended first
    assert [round(slot[1]) for slot in use.window.slots] == [100, 100, 40]
    assert not second.open and first.open and use.held(25.0) == 100


def test_before_a_keys_first_answer_requests_count_a_second_of_its_limit() -> None:
    clock = Clock()
    made, _ = guard(limits(burst=1000, rps=1000.0, tokens_per_minute=6000), clock=clock)
    admitted = [made.check("m", bearer(KEY)) is None for _ in range(80)]
    assert admitted.count(True) == 60  # 60 streams of a provisional 100 tokens, none ended yet


# -- at the key guard --------------------------------------------------------------------------------


def test_tokens_per_minute_refuse_with_the_time_until_the_minute_frees_up() -> None:
    clock = Clock()
    made, _ = guard(limits(burst=100, tokens_per_minute=1000), clock=clock)
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 600)  # t = 100
    clock.now = 110.0
    assert made.check("m", bearer(KEY)) is None  # 600 + the estimate of this one (600) = 1200
    made.spend_tokens(1, "m", 500)  # it used 500: 1100 in the last minute
    denial = made.check("m", bearer(KEY))
    assert denial is not None and "limit of 1000 tokens per minute" in denial.message
    assert "1100 in the last minute" in denial.message
    assert retry_after(denial) == math.ceil(100.0 + SLOT_S + MINUTE_S - 110.0) == 51
    clock.now = 100.0 + SLOT_S + MINUTE_S
    assert made.check("m", bearer(KEY)) is None  # the 600 left: 500 < 1000


def test_requests_are_admitted_while_the_budget_lasts_counting_those_in_flight() -> None:
    clock = Clock()
    made, _ = guard(limits(burst=100, tokens_per_minute=1000), clock=clock)
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 300)  # 300 used; the mean answer is 300
    outcomes = [made.check("m", bearer(KEY)) is None for _ in range(4)]
    # 300 < 1000: admitted (+300 = 600); 600 < 1000: admitted (+300 = 900); 900 < 1000: admitted
    # (+300 = 1200, the last one overshoots by its own size); 1200: refused.
    assert outcomes == [True, True, True, False]
    denial = made.check("m", bearer(KEY))
    assert retry_after(denial) == 61  # the estimates were made now: they leave a minute (and a slot) on
    assert "requests in flight included" in (denial.message if denial else "")


def test_the_monthly_token_quota_counts_the_store_and_this_gateway() -> None:
    made, source = guard(limits(burst=100, monthly_tokens=1000, tokens_used=900))
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 150)
    denial = made.check("m", bearer(KEY))
    assert denial is not None and "monthly token quota of 1000 tokens" in denial.message
    assert retry_after(denial) == seconds_to_next_month(NOV_15) == 16 * 86400

    asyncio.run(made.sync())
    assert source.token_flushes == [(MONTH, {1: 150})]
    assert source.flushes == [(MONTH, {1: 1})]
    assert source.keys[0].tokens_used == 1050
    assert made.check("m", bearer(KEY)) is not None  # still over after the totals came back


def test_tokens_are_counted_for_every_key_and_refusals_take_no_request_token() -> None:
    clock = Clock()
    made, source = guard(limits(1, KEY, burst=1, rps=1.0, tokens_per_minute=100), clock=clock)
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 100)
    made.spend_tokens(1, "m", 0)  # an answer without usage or text: nothing to count
    clock.now += 1.0  # the request bucket has a token again
    assert made.check("m", bearer(KEY)) is not None  # refused by tokens per minute...
    clock.now += MINUTE_S + SLOT_S
    assert made.check("m", bearer(KEY)) is None  # ...which took no token from the request bucket
    made.spend_tokens(2, "m", 7)  # a key without token limits: counted for the month only
    asyncio.run(made.sync())
    assert source.token_flushes == [(MONTH, {1: 100, 2: 7})]


def test_token_counts_survive_a_failed_sync_and_are_flushed_once() -> None:
    made, source = guard(limits(burst=100, monthly_tokens=10**6))
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 42)
    source.fail = True
    assert asyncio.run(made.sync()) is False
    assert made.tokens_used(source.keys[0], MONTH) == 42
    source.fail = False
    assert asyncio.run(made.sync()) is True
    assert source.token_flushes == [(MONTH, {1: 42})]
    assert made.tokens_used(source.keys[0], MONTH) == 42  # the store's 42, not 84


# -- steady load, simulated --------------------------------------------------------------------------
#
# Requests come faster than the limit allows; each admitted one streams for a while and then spends its
# tokens. Each request runs in a context of its own, as each ASGI request runs in a task of its own, so
# the guard pairs each answer with its own request's reservation. The clock is simulated: no sleeps.
# A minute's tokens are those of the requests admitted (sent, for the client) in it, as the guard counts.

LIMIT = 12000
START = 100.0
WARM_UP_S = 120.0
RUN_S = 900.0


def minute_sums(spent: list[tuple[float, int]]) -> list[int]:
    """Tokens of the requests admitted in every minute [t, t + 60), t from the end of the warm-up in
    0.5 s steps, from (admitted at, tokens) of each answer."""
    spent.sort()
    times = [when for when, _ in spent]
    running = [0]
    for _, tokens in spent:
        running.append(running[-1] + tokens)
    sums = []
    t = START + WARM_UP_S
    while t + MINUTE_S <= START + RUN_S:
        sums.append(running[bisect.bisect_left(times, t + MINUTE_S)] - running[bisect.bisect_left(times, t)])
        t += 0.5
    return sums


def within_5_percent(sums: list[int]) -> None:
    assert len(sums) > 1000
    assert max(sums) <= LIMIT * 1.05, max(sums) / LIMIT  # never more than 5 % over, in any minute
    assert statistics.mean(sums) >= LIMIT * 0.95, statistics.mean(sums) / LIMIT  # nor held far below


@pytest.mark.parametrize(
    ("seed", "gap"),
    [
        pytest.param(1, lambda rng: 0.1, id="10-per-s-regular"),
        pytest.param(2, lambda rng: rng.expovariate(5.0), id="5-per-s-poisson"),
        pytest.param(3, lambda rng: rng.expovariate(20.0), id="20-per-s-poisson"),
    ],
)
def test_tokens_per_minute_hold_within_5_percent_under_steady_load(
    seed: int, gap: Callable[[random.Random], float]
) -> None:
    clock = Clock()
    made, _ = guard(limits(burst=1000, rps=1000.0, tokens_per_minute=LIMIT), clock=clock)
    rng = random.Random(seed)
    ending: list[tuple[float, float, int, contextvars.Context]] = []  # (ends, admitted, tokens, context)
    spent: list[tuple[float, int]] = []
    now = START
    while now < START + RUN_S:
        while ending and ending[0][0] <= now:
            clock.now, admitted, tokens, context = heapq.heappop(ending)
            context.run(made.spend_tokens, 1, "m", tokens)
            spent.append((admitted, tokens))
        clock.now = now
        context = contextvars.copy_context()
        if context.run(made.check, "m", bearer(KEY)) is None:
            heapq.heappush(ending, (now + rng.uniform(0.5, 3.0), now, rng.randint(60, 140), context))
        now += gap(rng)
    within_5_percent(minute_sums(spent))


def test_clients_that_wait_as_retry_after_says_get_the_limit_too() -> None:
    clock = Clock()
    made, _ = guard(limits(burst=1000, rps=1000.0, tokens_per_minute=LIMIT), clock=clock)
    rng = random.Random(4)
    # (when, client, tokens to spend or 0 to send, when admitted, the request's context)
    events: list[tuple[float, int, int, float, contextvars.Context]] = [
        (START + client * 0.3, client, 0, 0.0, contextvars.copy_context()) for client in range(16)
    ]
    spent: list[tuple[float, int]] = []
    waits: set[int] = set()
    while events[0][0] < START + RUN_S:
        clock.now, client, tokens, admitted, context = heapq.heappop(events)
        if tokens:
            context.run(made.spend_tokens, 1, "m", tokens)
            spent.append((admitted, tokens))
            heapq.heappush(events, (clock.now, client, 0, 0.0, contextvars.copy_context()))  # at once, again
            continue
        denial = context.run(made.check, "m", bearer(KEY))
        if denial is None:
            ends = clock.now + rng.uniform(0.5, 3.0)
            heapq.heappush(events, (ends, client, rng.randint(60, 140), clock.now, context))
        else:
            waits.add(retry_after(denial))
            heapq.heappush(
                events, (clock.now + retry_after(denial), client, 0, 0.0, contextvars.copy_context())
            )
    within_5_percent(minute_sums(spent))
    assert min(waits) >= 1 and max(waits) <= 61


def test_a_key_without_token_limits_is_never_refused_for_tokens_but_counts_them() -> None:
    made, _ = guard(limits(burst=100))
    assert made.check("m", bearer(KEY)) is None
    made.spend_tokens(1, "m", 10**6)
    assert made.check("m", bearer(KEY)) is None
    assert made.tokens_used(limits(), MONTH) == 10**6


def test_tokens_spent_before_the_first_snapshot_are_counted() -> None:
    made_source = FakeSource([limits(tokens_per_minute=10)])
    made = KeyGuard(made_source, wall=lambda: NOV_15)
    made.spend_tokens(1, "m", 5)
    asyncio.run(made.sync())
    assert made.tokens_used(made_source.keys[0], MONTH) == 5
