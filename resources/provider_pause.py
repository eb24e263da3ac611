"""One run's rate-limit pause of the email provider: after a 429, no other call starts until its window ends.

A provider's rate limit is the account's, not one email's: while the window a 429 named (its Retry-After /
X-RateLimit-Reset) is open, every call of the run would be refused alike, and providers punish a client
that keeps calling. The calls of one run share one `ProviderPause` (they run on several threads). Between
runs the window lives in the outbox, as the `next_attempt_at` of the rows it holds (`stores.sends`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ProviderPause:
    """The provider's rate-limit window as this run's calls heard it; thread-safe.

    `hold` after a 429, `left` before a call. `longest` is the longest window heard, in seconds: rows
    held by it wait that long from the run's `now` (every wait of a run counts from its `now`)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._ends: float | None = None  # on `monotonic`'s clock
        self.longest: float | None = None

    def hold(self, seconds: float) -> None:
        """No call until `seconds` from now (a window already open that ends later stays as it is)."""
        with self._lock:
            ends = self._monotonic() + seconds
            self._ends = ends if self._ends is None else max(self._ends, ends)
            self.longest = seconds if self.longest is None else max(self.longest, seconds)

    def left(self) -> float:
        """Seconds until the window ends (0: no window open)."""
        with self._lock:
            return 0.0 if self._ends is None else max(0.0, self._ends - self._monotonic())

    def wait(self, delay: float, *, window: float | None = None) -> float:
        """Seconds before a call's next try: its own `delay`, or the window still open, the longer; a 429
        that named its `window` (seconds) holds every call first."""
        if window:
            self.hold(window)
        return max(delay, self.left())

    def longer(self, hinted: float | None) -> float | None:
        """The provider's hint, or the window still open, the longer (None: neither)."""
        left = self.left()
        return hinted if left <= 0 else max(hinted or 0.0, left)

    @property
    def ends(self) -> float | None:
        """When the window ends, on `monotonic`'s clock (None: never held); compare two readings to tell
        whether a call heard a longer window meanwhile."""
        with self._lock:
            return self._ends
