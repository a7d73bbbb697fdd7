"""Supervising a training run from the parent (the gateway or a worker), with asyncio.

Training never runs in the parent's process: a crash, an out-of-memory kill or a CUDA error ends
only the child, and the GPU memory it held is returned when it exits. The parent streams the
child's events to a callback and turns the way it ended into an outcome:

- exit 0 with a ``result`` event: ``succeeded``;
- a cancel (SIGTERM, then SIGKILL after a grace period), or an exit with
  :data:`~tuner.training.stop.EXIT_CANCELLED`: ``cancelled``;
- any other exit code or signal: ``failed``, with a reason (the child's error, the signal's name,
  the last lines of its stderr).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from tuner.training.config import TrainingConfig
from tuner.training.events import TrainingEvent, TrainingResult
from tuner.training.stop import EXIT_CANCELLED

logger = logging.getLogger(__name__)

EventCallback = Callable[[TrainingEvent], Awaitable[None] | None]
CONFIG_FILE = "config.json"
STDERR_FILE = "stderr.log"
STDERR_TAIL_LINES = 20
MAX_REASON_CHARS = 4000
MAX_EVENT_LINE = 1 << 20
# Progress bars and advisory notices would fill the stderr tail that explains a failure.
QUIET_ENV = {
    "PYTHONUNBUFFERED": "1",
    "TQDM_DISABLE": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


class TrainingStatus(StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


@dataclass(frozen=True)
class TrainingOutcome:
    status: TrainingStatus
    result: TrainingResult | None = None
    reason: str | None = None
    """Why it failed or was cancelled, for people: it may quote the child's stderr."""
    returncode: int | None = None


class TrainingProcess:
    """One training run in a child process: ``await start()``, then ``await wait()``.

    The configuration is written to ``output_dir/config.json`` and the child's stderr to
    ``output_dir/stderr.log``. Starting again on the same ``output_dir`` resumes from the last
    checkpoint.
    """

    def __init__(
        self,
        config: TrainingConfig,
        *,
        on_event: EventCallback | None = None,
        grace_period_s: float = 30.0,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.on_event = on_event
        self.grace_period_s = grace_period_s
        self.python = python
        self.env = env
        self._process: asyncio.subprocess.Process | None = None
        self._result: TrainingResult | None = None
        self._error: str | None = None
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._cancel_requested = False
        self._readers: list[asyncio.Task[None]] = []
        self._outcome: TrainingOutcome | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("this training process was already started")
        self.config.output_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.config.output_dir / CONFIG_FILE
        config_file.write_text(self.config.model_dump_json(indent=2))
        env = {**os.environ, **QUIET_ENV, **(self.env or {})}
        self._process = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "tuner.training",
            str(config_file),
            # The child reads EOF on stdin when this process dies, and stops (see __main__).
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=MAX_EVENT_LINE,
        )
        self._readers = [
            asyncio.create_task(self._read_events(self._process.stdout)),
            asyncio.create_task(self._read_stderr(self._process.stderr, self.config.output_dir / STDERR_FILE)),
        ]

    async def run(self) -> TrainingOutcome:
        await self.start()
        return await self.wait()

    async def wait(self) -> TrainingOutcome:
        if self._process is None:
            raise RuntimeError("the training process was not started")
        if self._outcome is None:
            returncode = await self._process.wait()
            await asyncio.gather(*self._readers)
            if self._process.stdin is not None:
                self._process.stdin.close()
            self._outcome = self._outcome or self._classify(returncode)
        return self._outcome

    async def cancel(self) -> TrainingOutcome:
        """Ask the child to stop at its next step boundary (SIGTERM); kill it if it has not exited
        within the grace period. Returns the outcome, ``cancelled`` unless it had already ended."""
        process = self._process
        if process is None:
            raise RuntimeError("the training process was not started")
        if process.returncode is None:
            self._cancel_requested = True
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), self.grace_period_s)
            except TimeoutError:
                logger.warning(
                    "training process %s ignored SIGTERM for %ss; killing it", process.pid, self.grace_period_s
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        return await self.wait()

    def _classify(self, returncode: int) -> TrainingOutcome:
        if returncode == 0 and self._result is not None:
            return TrainingOutcome(TrainingStatus.succeeded, result=self._result, returncode=0)
        if returncode == EXIT_CANCELLED or (self._cancel_requested and returncode != 0):
            reason = "cancelled" if self._cancel_requested else "stopped by SIGTERM from outside"
            return TrainingOutcome(TrainingStatus.cancelled, reason=reason, returncode=returncode)
        if returncode == 0:
            reason = "the training process exited without a result"
        elif returncode < 0:
            name = signal.Signals(-returncode).name if -returncode in signal.valid_signals() else str(-returncode)
            reason = f"the training process was killed by {name}"
            if -returncode == signal.SIGKILL:
                reason += " (the kernel's out-of-memory killer sends SIGKILL)"
        else:
            reason = (
                f"training failed: {self._error}" if self._error else f"the training process exited with {returncode}"
            )
        tail = "\n".join(self._stderr_tail).strip()
        if tail:
            reason += "\n--- last lines of its stderr ---\n" + tail
        return TrainingOutcome(TrainingStatus.failed, reason=reason[-MAX_REASON_CHARS:], returncode=returncode)

    async def _read_events(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        while line := await stream.readline():
            event = TrainingEvent.from_line(line)
            if event is None:
                continue
            if event.type == "result":
                self._result = event.result
            elif event.type == "error":
                self._error = event.message
            await self._deliver(event)

    async def _deliver(self, event: TrainingEvent) -> None:
        if self.on_event is None:
            return
        # A failing callback (a database hiccup) must not stop the supervision of the child.
        try:
            maybe = self.on_event(event)
            if inspect.isawaitable(maybe):
                await maybe
        except Exception:
            logger.exception("training event callback failed on a %s event", event.type)

    async def _read_stderr(self, stream: asyncio.StreamReader | None, log_file: Path) -> None:
        assert stream is not None
        with log_file.open("ab") as log:
            while line := await stream.readline():
                log.write(line)
                log.flush()
                text = line.decode("utf-8", "replace").rstrip()
                if text:
                    self._stderr_tail.append(text)
