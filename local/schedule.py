"""The local stand-in for an EventBridge schedule: call a handler with a "Scheduled Event" every `interval` seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from local.events import scheduled_event
from local.serving import BackgroundLoop

log = logging.getLogger("filepipe.local")


class Schedule:
    """Runs `handler` in a background thread every `interval` seconds (first run after one interval)."""

    def __init__(self, name: str, handler: Callable[[Mapping[str, Any], Any], Any], interval: float,
                 region: str) -> None:
        self.name = name
        self.handler = handler
        self.interval = interval
        self.region = region
        self.runs = 0
        self._loop = BackgroundLoop(self._run, f"schedule-{name}", join_seconds=30)

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _run(self) -> None:
        while not self._loop.stopping.wait(self.interval):
            try:
                self.handler(scheduled_event(self.name, self.region), None)
            except Exception:  # as a failed scheduled invocation: logged, and the next one comes anyway
                log.exception("scheduled %s failed", self.name)
            self.runs += 1
