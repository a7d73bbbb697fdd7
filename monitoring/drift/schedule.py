"""The periodic drift check of every adapter, as a job on the tuner's persistent scheduler.

APScheduler 3 stores a job as a textual reference to a module-level function, so the function
cannot close over the monitor: it finds the one this process installed. A stored check that fires
in a process without a monitor (the scheduler runs there, drift monitoring not) does nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC

from apscheduler.triggers.interval import IntervalTrigger

from monitoring.drift.models import DriftTrigger
from monitoring.drift.monitor import DriftMonitor
from switchyard.config import DriftSettings
from tuner.scheduling import PersistentJob

logger = logging.getLogger(__name__)

JOB_ID = "drift-check"
JOB_FUNC = "monitoring.drift.schedule:run_scheduled_drift"

_monitor: DriftMonitor | None = None


def install(monitor: DriftMonitor | None) -> None:
    """Make ``monitor`` the one scheduled checks use (None: none)."""
    global _monitor
    _monitor = monitor


def drift_job(settings: DriftSettings) -> PersistentJob:
    """The scheduler job of the check (a trigger of None removes a stored one)."""
    trigger = IntervalTrigger(seconds=settings.interval_s, timezone=UTC) if settings.interval_s else None
    return PersistentJob(id=JOB_ID, func=JOB_FUNC, trigger=trigger, name="drift check of every adapter")


def run_scheduled_drift() -> None:
    """The scheduler job (run in the event loop's thread pool): check every adapter."""
    monitor = _monitor
    if monitor is None:
        logger.warning("scheduled drift check skipped: no drift monitor runs in this process")
        return
    results = monitor.check_all(trigger=DriftTrigger.schedule)
    drifted = [r.adapter for r in results if r.drifted]
    logger.info("scheduled drift check: %d adapters checked, drifted: %s", len(results), ", ".join(drifted) or "none")
