"""A fault switch the emulators share: one fault mode, on for some seconds, then off by itself."""

from __future__ import annotations

import threading
import time


class FaultSwitch:
    """Which fault (one of `modes`) is on now, if any; set for a bounded time by a test."""

    def __init__(self, modes: tuple[str, ...]):
        self.modes = modes
        self._lock = threading.Lock()
        self._fault: tuple[str, float] | None = None

    def set(self, seconds: float, mode: str) -> None:
        if mode not in self.modes:
            raise ValueError(f"unknown fault {mode!r}")
        with self._lock:
            self._fault = (mode, time.monotonic() + seconds)

    def now(self) -> str | None:
        with self._lock:
            if self._fault is None or time.monotonic() >= self._fault[1]:
                return None
            return self._fault[0]
