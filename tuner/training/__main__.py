"""``python -m tuner.training CONFIG.json``: one training run, in a process of its own.

stdout carries only the JSON-lines events (:class:`~tuner.training.events.TrainingEvent`);
everything the libraries print goes to stderr, whose last lines explain a failure. Exit codes:
0 with a ``result`` event, :data:`~tuner.training.stop.EXIT_CANCELLED` after SIGTERM (or SIGINT),
1 on an error (an ``error`` event names it).
"""

from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
import threading
import traceback
from pathlib import Path
from types import FrameType
from typing import TextIO

from tuner.training.config import TrainingConfig
from tuner.training.events import TrainingEvent
from tuner.training.runner import run
from tuner.training.stop import EXIT_CANCELLED, StopRequest, TrainingCancelled

ORPHAN_GRACE_S = 30.0
"""How long a child whose parent died may take to stop at a step boundary before it just exits."""


def _event_stream() -> TextIO:
    """Keep the real stdout for events and point fd 1 at stderr, so that a stray ``print`` in a
    library cannot corrupt the event stream."""
    sys.stdout.flush()
    events_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return os.fdopen(events_fd, "w", buffering=1, encoding="utf-8")


def _watch_parent(stop: StopRequest) -> None:
    """The parent holds our stdin pipe open and never writes: EOF means it died (even by SIGKILL),
    and an orphaned training would keep the GPU. Stop as if cancelled, then exit regardless."""
    stdin = sys.stdin.fileno()
    if not stat.S_ISFIFO(os.fstat(stdin).st_mode):
        return  # started by hand, from a terminal or with stdin redirected

    def watch() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside the buffered reader holds its
        # lock, and the interpreter aborts at exit when it cannot take it.
        while os.read(stdin, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(ORPHAN_GRACE_S)
        os._exit(EXIT_CANCELLED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    stop = StopRequest()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.request(f"stopped by {signal.Signals(signum).name}")

    # First, so that a cancel during the slow imports and model loading is already handled.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parser = argparse.ArgumentParser(prog="python -m tuner.training", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="a TrainingConfig as JSON")
    args = parser.parse_args(argv)
    events = _event_stream()

    def emit(event: TrainingEvent) -> None:
        events.write(event.to_line())

    _watch_parent(stop)
    try:
        run(TrainingConfig.model_validate_json(args.config.read_text()), on_event=emit, stop=stop)
    except TrainingCancelled as exc:
        print(f"training cancelled: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except Exception as exc:
        traceback.print_exc()
        emit(TrainingEvent(type="error", message=f"{type(exc).__name__}: {exc}"))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
