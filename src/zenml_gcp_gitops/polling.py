"""One way to wait for something: `poll_until`, on tenacity, with an injectable sleep and clock.

    poll_until(attempt, timeout=, interval=, on_timeout=, sleep=time.sleep, clock=time.monotonic)

`attempt()` returns None to mean "not yet" and anything else to finish; an exception it raises
ends the wait at once (that is how a poll fails fast). When `timeout` has passed after an
attempt, `on_timeout()` builds the exception to raise. Tests pass a fake `sleep` (and `clock`)
so a wait of minutes takes no time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NoReturn, TypeVar, cast

import tenacity

T = TypeVar("T")


def poll_until(
    attempt: Callable[[], T | None],
    *,
    timeout: float,
    interval: float,
    on_timeout: Callable[[], BaseException],
    max_interval: float | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call `attempt` every `interval` seconds (growing 1.5x up to `max_interval`, if given)."""
    start = clock()

    def timed_out(_: tenacity.RetryCallState) -> bool:
        return clock() - start >= timeout

    def give_up(_: tenacity.RetryCallState) -> NoReturn:
        raise on_timeout()

    wait: tenacity.wait.wait_base = tenacity.wait_fixed(interval)
    if max_interval is not None:
        wait = tenacity.wait_exponential(
            multiplier=interval, exp_base=1.5, min=interval, max=max_interval
        )
    retrying: tenacity.Retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda r: r is None),
        stop=timed_out,
        wait=wait,
        sleep=_discarding(sleep),
        retry_error_callback=give_up,
    )
    # None means "not yet", so what comes back past the retries is never None
    return cast(T, retrying(attempt))


def _discarding(sleep: Callable[[float], object]) -> Callable[[float], None]:
    """tenacity wants a sleep returning None; `Event.wait` (a handy one) returns a bool."""

    def call(seconds: float) -> None:
        sleep(seconds)

    return call
