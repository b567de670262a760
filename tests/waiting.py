"""The one way a test waits for something: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05,
             pause: Callable[[float], object] = time.sleep) -> T:
    """`condition()`'s first truthy answer, asked every `interval` seconds; an AssertionError naming `what` once
    `timeout` seconds have passed without one. The condition is asked once more after the deadline, so a slow machine
    fails a test only when the thing really did not happen in time.

    `pause` waits between two questions (a Playwright page needs its own `wait_for_timeout`, which lets the page's
    events through, where `time.sleep` would hold them back).
    """
    deadline = time.monotonic() + timeout
    while True:
        late = time.monotonic() > deadline
        answer = condition()
        if answer:
            return answer
        if late:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        pause(interval)
