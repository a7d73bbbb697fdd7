"""The drift monitor: one check of an adapter's traffic, from choosing the windows to acting on
the verdict.

A check is blocking work (database reads, pandas, scikit-learn): callers in an event loop run it
on a thread. Checks in one process run one at a time, so a scheduled pass over every adapter
never takes more than one core from serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opentelemetry.trace import Tracer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from adapters.models import Adapter
from adapters.registry import require_adapter
from monitoring.drift.actions import ALERT_TYPE, AlertCounter, Webhook, log_alert, request_refresh
from monitoring.drift.analysis import Analysis, analyse
from monitoring.drift.crud import create_result, reports_beyond, set_report_file
from monitoring.drift.models import (
    DEFAULT_WINDOWS,
    DriftResult,
    DriftResultCreate,
    DriftStatus,
    DriftTrigger,
    ReferenceKind,
    Windows,
)
from monitoring.drift.windows import (
    Side,
    current_window,
    previous_window,
    read_frame,
    sample_keys,
    snapshot_reference,
    time_window,
)
from monitoring.drift.workspace import DriftWorkspace
from monitoring.tracing import NOOP_TRACER, drift_span, set_drift_result
from switchyard.config import DriftSettings, Settings
from switchyard.db import session_scope
from tuner.exceptions import InvalidPolicy
from tuner.policies import PresetName

logger = logging.getLogger(__name__)


@dataclass
class _Compared:
    reference: Side
    current: Side
    analysis: Analysis | None
    sample_size: int | None


class DriftMonitor:
    def __init__(
        self,
        *,
        db: Engine,
        settings: DriftSettings,
        workspace: DriftWorkspace,
        snapshot_root: Path,
        default_preset: PresetName,
        webhook: Webhook | None = None,
        report_url: Callable[[int], str] | None = None,
        on_job_queued: Callable[[], None] | None = None,
        tracer: Tracer = NOOP_TRACER,
    ) -> None:
        """``report_url``: where a result's report is served (for alerts); ``on_job_queued``:
        called (from the checking thread) after a drift refresh was queued; ``tracer``: gives
        each check a span."""
        self._db = db
        self.settings = settings
        self.workspace = workspace
        self._snapshot_root = snapshot_root
        self._default_preset = default_preset
        self._webhook = webhook
        self._report_url = report_url
        self._on_job_queued = on_job_queued
        self._tracer = tracer
        self._lock = threading.Lock()
        self.alerts = AlertCounter()

    def adapters(self) -> list[str]:
        with session_scope(self._db) as session:
            return list(session.exec(select(Adapter.name).order_by(col(Adapter.name))))

    def check(self, adapter: str, *, trigger: DriftTrigger, windows: Windows = DEFAULT_WINDOWS) -> DriftResult:
        """Compare ``adapter``'s current window with its reference, store the result, and act on
        a drifted verdict. Current: ``windows.current``, else the last ``window_s`` seconds or
        ``window_rows`` requests. Reference: ``windows.reference``, else the requests of the
        active version's training snapshot (or the latest curated one), else as much traffic just
        before the current window. :class:`~adapters.exceptions.AdapterNotFound` for an unknown
        adapter."""
        with self._lock, drift_span(self._tracer, adapter) as span:
            started = time.perf_counter()
            with session_scope(self._db) as session:
                row = require_adapter(session=session, name=adapter)
                compared = self._compare(session, row, windows, trigger)
            result = self._store(adapter, compared, trigger, started)
            set_drift_result(
                span,
                status=result.status.value,
                drifted=result.drifted,
                drift_share=result.drift_share,
                reference_rows=result.reference_rows,
                current_rows=result.current_rows,
            )
            if result.drifted:
                self._alert(result)
        return result

    def check_all(self, *, trigger: DriftTrigger, windows: Windows = DEFAULT_WINDOWS) -> list[DriftResult]:
        """:meth:`check` every adapter; one whose check fails is logged and left out."""
        results = []
        for name in self.adapters():
            try:
                results.append(self.check(name, trigger=trigger, windows=windows))
            except Exception:
                logger.exception("drift check of %s failed", name)
        return results

    def close(self, *, wait: bool = False) -> None:
        """Release the webhook's thread; ``wait``: deliver the alerts still queued first."""
        if self._webhook is not None:
            self._webhook.close(wait=wait)

    # -- one check -----------------------------------------------------------------------------

    def _sides(self, session: Session, adapter: Adapter, windows: Windows) -> tuple[Side, Side]:
        settings = self.settings
        if windows.current is not None:
            current = time_window(session, adapter.name, windows.current)
        else:
            current = current_window(session, adapter.name, rows=settings.window_rows, seconds=settings.window_s)
        if windows.reference is not None:
            reference = time_window(session, adapter.name, windows.reference)
            reference.kind = ReferenceKind.window
            return reference, current
        reference = snapshot_reference(session, adapter, self._snapshot_root)
        if reference is not None:
            return reference, current
        if current.start is None:  # no traffic at all: nothing before it either
            return Side(kind=ReferenceKind.previous_window), current
        span = None
        if windows.current is not None:
            span = (windows.current.end - windows.current.start).total_seconds()
        elif settings.window_s is not None:
            span = float(settings.window_s)
        rows = max(current.count, settings.min_rows)
        return previous_window(session, adapter.name, current, rows=rows, seconds=span), current

    def _compare(self, session: Session, adapter: Adapter, windows: Windows, trigger: DriftTrigger) -> _Compared:
        settings = self.settings
        reference, current = self._sides(session, adapter, windows)
        if min(reference.count, current.count) < settings.min_rows:
            return _Compared(reference, current, None, None)
        reference_keys, reference_sampled = sample_keys(reference, settings.sample_size, seed=settings.seed)
        current_keys, current_sampled = sample_keys(current, settings.sample_size, seed=settings.seed)
        reference_frame = read_frame(session, reference, reference_keys)
        current_frame = read_frame(session, current, current_keys)
        session.rollback()  # end the read transaction before the long computation
        sampled = reference_sampled or current_sampled
        analysis = analyse(
            reference_frame,
            current_frame,
            min_values=settings.min_rows,
            false_alarm_rate=settings.false_alarm_rate,
            alert_on_performance=settings.alert_on_performance,
            curated_reference=reference.kind is ReferenceKind.snapshot,
            timestamp=datetime.now(UTC),
            tags=[adapter.name],
            metadata={
                "adapter": adapter.name,
                "reference": (reference.kind or ReferenceKind.window).value,
                "trigger": trigger.value,
            },
        )
        return _Compared(reference, current, analysis, settings.sample_size if sampled else None)

    def _store(self, adapter: str, compared: _Compared, trigger: DriftTrigger, started: float) -> DriftResult:
        reference, current, analysis = compared.reference, compared.current, compared.analysis
        fields: dict[str, Any] = {
            "adapter": adapter,
            "reference_kind": reference.kind or ReferenceKind.window,
            "reference_snapshot_id": reference.snapshot_id,
            "reference_start": reference.start,
            "reference_end": reference.end,
            "current_start": current.start,
            "current_end": current.end,
            "reference_rows": reference.count,
            "current_rows": current.count,
            "sample_size": compared.sample_size,
            "trigger": trigger,
        }
        if analysis is None:
            short = [
                f"{n} rows in the {side} window"
                for n, side in ((reference.count, "reference"), (current.count, "current"))
                if n < self.settings.min_rows
            ]
            fields |= {
                "status": DriftStatus.insufficient_data,
                "reason": f"too few rows to compare ({', '.join(short)}; {self.settings.min_rows} needed)",
            }
        else:
            fields |= {
                "status": analysis.status,
                "reason": analysis.reason,
                "drifted": analysis.drifted,
                "drift_share": analysis.drift_share,
                "columns": [column.model_dump(mode="json") for column in analysis.columns],
            }
        report_file = None
        if analysis is not None and analysis.snapshot is not None:
            try:
                fields["evidently_snapshot_id"] = self.workspace.add_run(adapter, analysis.snapshot)
            except Exception:  # the result stands without its copy in the Evidently UI
                logger.exception("could not add the drift run of %s to the Evidently workspace", adapter)
            try:
                report_file = self.workspace.save_report(adapter, analysis.snapshot)
            except Exception:
                logger.exception("could not save the drift report of %s", adapter)
        fields["duration_s"] = time.perf_counter() - started  # the whole check, its files included
        with session_scope(self._db) as session:
            result = create_result(
                session=session, result_in=DriftResultCreate.model_validate(fields), report_file=report_file
            )
            self._prune_reports(session, adapter)
        return result

    def _prune_reports(self, session: Session, adapter: str) -> None:
        for old in reports_beyond(session=session, adapter=adapter, keep=self.settings.reports_kept):
            if old.report_file is not None:
                try:
                    self.workspace.delete_report(old.report_file)
                except (OSError, ValueError) as exc:
                    logger.warning("could not delete the old drift report %s: %s", old.report_file, exc)
            set_report_file(session=session, result=old, report_file=None)

    # -- a drifted verdict ---------------------------------------------------------------------

    def _alert(self, result: DriftResult) -> None:
        assert result.id is not None
        payload = {
            "type": ALERT_TYPE,
            "adapter": result.adapter,
            "result_id": result.id,
            "drift_share": result.drift_share,
            "drifted_columns": [c["column"] for c in result.columns if c.get("drifted") and c.get("decides_verdict")],
            "reference_kind": result.reference_kind.value,
            "current_start": result.current_start.isoformat() if result.current_start else None,
            "current_end": result.current_end.isoformat() if result.current_end else None,
            "report_url": self._report_url(result.id) if self._report_url and result.report_file else None,
            "created_at": result.created_at.isoformat(),
        }
        log_alert(payload)
        self.alerts.add(result.adapter)
        if self._webhook is not None:
            self._webhook.send(payload)
        try:
            with session_scope(self._db) as session:
                job = request_refresh(session=session, adapter=result.adapter, default_preset=self._default_preset)
        except InvalidPolicy as exc:
            logger.error("drift refresh of %s not queued: %s", result.adapter, exc.message)
            return
        except Exception:  # the result is stored and alerted; the next drifted check asks again
            logger.exception("drift refresh of %s not queued", result.adapter)
            return
        if job is not None and self._on_job_queued is not None:
            self._on_job_queued()


def build_monitor(
    db: Engine,
    settings: Settings,
    *,
    report_url: Callable[[int], str] | None = None,
    on_job_queued: Callable[[], None] | None = None,
    tracer: Tracer = NOOP_TRACER,
) -> DriftMonitor:
    """The monitor ``settings`` describe (its webhook included), on ``db``."""
    drift = settings.monitoring.drift
    webhook = (
        Webhook(
            drift.webhook_url.get_secret_value(), timeout_s=drift.webhook_timeout_s, attempts=drift.webhook_attempts
        )
        if drift.webhook_url
        else None
    )
    return DriftMonitor(
        db=db,
        settings=drift,
        workspace=DriftWorkspace(settings.drift_workspace_dir, settings.drift_reports_dir),
        snapshot_root=settings.snapshot_dir,
        default_preset=settings.training_preset,
        webhook=webhook,
        report_url=report_url,
        on_job_queued=on_job_queued,
        tracer=tracer,
    )
