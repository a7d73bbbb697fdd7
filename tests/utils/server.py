"""A real gateway in a subprocess on a free loopback port (vLLM's ``RemoteOpenAIServer`` is the model)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RemoteGateway:
    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, ready_timeout_s: float = 300) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "gateway.log"
        inherited = {
            k: v for k, v in os.environ.items() if k not in ("SWITCHYARD_ADMIN_KEY", "SWITCHYARD_DATABASE_URL")
        }
        full_env = {
            **inherited,
            "SWITCHYARD_DATA_DIR": str(data_dir),
            "SWITCHYARD_ENVIRONMENT": "development",
            **(env or {}),
        }
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "switchyard.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(ready_timeout_s)
        self.admin_key = (data_dir / "admin.key").read_text().strip()

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"gateway not ready after {timeout_s}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, *, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()
        return self.process.returncode
