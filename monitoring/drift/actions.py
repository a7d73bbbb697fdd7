"""What a drifted verdict sets off: a structured log line, a counter, an optional webhook, and
(when the adapter's tuning policy asks for it) one refresh job queued with the tuner.

The webhook is posted from a background thread, retried with exponential backoff and a timeout
per attempt, so neither serving nor the drift run ever waits for it. The monitor never changes an
adapter itself: it asks the tuner for a job, and the tuner's gate decides what becomes of it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
from sqlmodel import Session
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from tuner.jobs.models import JobTrigger, TuningJob
from tuner.policies import PresetName, get_policy
from tuner.scheduling import queue_refresh

logger = logging.getLogger(__name__)
ALERT_TYPE = "drift.detected"


class WebhookRefused(Exception):
    """The webhook answered with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the webhook answered {status}")
        self.status = status


def _worth_retrying(exc: BaseException) -> bool:
    if isinstance(exc, WebhookRefused):  # the receiver's hiccup, not a refusal of the alert itself
        return exc.status >= 500 or exc.status in (408, 429)
    return isinstance(exc, httpx.TransportError)


class Webhook:
    """Posts alerts to one URL, one at a time, off the caller's thread."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float,
        attempts: int,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._attempts = attempts
        self._backoff = wait_exponential(multiplier=backoff_s, max=backoff_max_s)
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift-webhook")

    def post(self, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` (blocking, retried); raises the last error once the tries run out."""
        for attempt in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=self._backoff,
            retry=retry_if_exception(_worth_retrying),
            reraise=True,
        ):
            with attempt:
                response = self._client.post(self.url, json=payload)
                if response.status_code >= 400:
                    raise WebhookRefused(response.status_code)

    def send(self, payload: dict[str, Any]) -> Future[None]:
        """Queue ``payload`` for delivery and return at once; a delivery that fails for good is
        logged (the future holds the error too)."""

        def deliver() -> None:
            try:
                self.post(payload)
            except Exception as exc:
                logger.error("drift alert for %s not delivered to the webhook: %s", payload.get("adapter"), exc)
                raise

        try:
            return self._executor.submit(deliver)
        except RuntimeError as exc:  # closed: the process is shutting down
            logger.warning("drift alert for %s not sent: the webhook is closed", payload.get("adapter"))
            refused: Future[None] = Future()
            refused.set_exception(exc)
            return refused

    def close(self, *, wait: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=not wait)
        self._client.close()


class AlertCounter:
    """Drifted verdicts raised by this process, per adapter (a counter for the metrics)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, adapter: str) -> None:
        with self._lock:
            self._counts[adapter] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def log_alert(payload: dict[str, Any]) -> None:
    """One line with the alert's fields as ``key=value`` (and the payload as ``extra`` for
    structured log handlers)."""
    logger.warning(
        "%s adapter=%s result_id=%s drift_share=%.3f drifted_columns=%s reference=%s report=%s",
        ALERT_TYPE,
        payload["adapter"],
        payload["result_id"],
        payload["drift_share"] or 0.0,
        ",".join(payload["drifted_columns"]),
        payload["reference_kind"],
        payload.get("report_url") or "-",
        extra={"drift_alert": payload},
    )


def request_refresh(*, session: Session, adapter: str, default_preset: PresetName) -> TuningJob | None:
    """Queue one refresh of ``adapter`` (trigger ``drift``) if its tuning policy has
    ``refresh_on_drift`` and it has no job queued or running; None otherwise."""
    policy = get_policy(session=session, adapter=adapter)
    if policy is None or not policy.refresh_on_drift:
        return None
    return queue_refresh(session=session, adapter=adapter, trigger=JobTrigger.drift, default_preset=default_preset)
