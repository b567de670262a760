"""The local stand-in for an EventBridge schedule: call a handler with a "Scheduled Event" every `interval` seconds."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from local.events import scheduled_event

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
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"schedule-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.handler(scheduled_event(self.name, self.region), None)
            except Exception:  # as a failed scheduled invocation: logged, and the next one comes anyway
                log.exception("scheduled %s failed", self.name)
            self.runs += 1
