"""The node's timed duties, on one background thread: rotate epochs that are due
(``epochs.rotation_seconds``), purge subjects past retention (every
``retention.check_seconds``) and close sessions a peer left idle.

Due-ness is judged on the service's injected clock, so a test can move time forward; the thread
only decides how often to look (``poll_seconds``, real time). :meth:`Scheduler.tick` does one
round and is what tests call directly. A failing duty is logged by error code only (never with
data) and retried at the next round.
"""

from __future__ import annotations

import logging
import threading

from fiumatch.errors import FiumatchError
from fiumatch.node.service import NodeService

__all__ = ["Scheduler"]

_log = logging.getLogger("fiumatch.node.scheduler")


class Scheduler:
    """Runs :meth:`tick` every ``poll_seconds`` (default: a quarter of the rotation period,
    between 1 and 60 s) until :meth:`stop`."""

    def __init__(self, service: NodeService, *, poll_seconds: float | None = None) -> None:
        self.service = service
        rotation = service.settings.epoch_rotation_seconds
        self.poll_seconds = (
            poll_seconds if poll_seconds is not None else max(1.0, min(rotation / 4, 60.0))
        )
        self._next_purge = service.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:
        """One round of every duty that is due."""
        service = self.service
        for name, duty in (
            ("rotation", service.rotate_due),
            ("purge", self._purge_if_due),
            ("idle sessions", service.expire_idle_sessions),
        ):
            try:
                duty()
            except FiumatchError as exc:
                _log.warning("scheduled %s failed: %s", name, exc.code)
            except Exception as exc:  # keep the scheduler alive; the next round retries
                _log.error("scheduled %s failed: %s", name, type(exc).__name__)

    def _purge_if_due(self) -> None:
        now = self.service.now()
        if now >= self._next_purge:
            self._next_purge = now + self.service.settings.retention_check_seconds
            self.service.purge_expired("scheduler")

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fiumatch-scheduler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.tick()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
