"""CPU time the local stack spends on requests: this process (which serves the site and the API, and runs the
handlers) plus the emulator's process, less what both spend idle (the stream poller and the VM host poll the
emulator several times a second whether or not a request comes)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """User + system time of this process, every thread."""
    times = os.times()
    return times.user + times.system


def process_cpu_seconds(pid: int) -> float:
    """User + system time of another running process, from `/proc/<pid>/stat` (fields 14 and 15, in clock ticks;
    the fields are counted after the command name, which may itself hold spaces and parentheses)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class StackCpu:
    """Busy CPU seconds of the local stack between two readings: `start()`, then `busy()`."""

    emulator_pid: int
    idle_per_second: float = 0.0
    _cpu: float = field(default=0.0, init=False, repr=False)
    _wall: float = field(default=0.0, init=False, repr=False)

    def total(self) -> float:
        return own_cpu_seconds() + process_cpu_seconds(self.emulator_pid)

    def calibrate(self, seconds: float = 2.0) -> float:
        """Measure the idle rate (CPU seconds per second) over `seconds` with no request in flight."""
        self.start()
        time.sleep(seconds)
        self.idle_per_second = (self.total() - self._cpu) / (time.monotonic() - self._wall)
        return self.idle_per_second

    def start(self) -> None:
        self._cpu = self.total()
        self._wall = time.monotonic()

    def busy(self) -> float:
        """CPU seconds since `start()` beyond the idle rate (never below zero)."""
        used = self.total() - self._cpu
        return max(0.0, used - self.idle_per_second * (time.monotonic() - self._wall))
