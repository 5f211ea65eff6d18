"""Real Linnet processes for tests: start, wait until they serve, stop or kill them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Process logs live as long as the test run, for failure messages, and are removed with it.
_LOG_DIR = tempfile.TemporaryDirectory(prefix="linnet-proc-")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class LinnetProcess:
    """A `manage.py` command in a subprocess, with its output kept for failure messages."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, log_path: Path | None = None) -> None:
        self.args = args
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "linnet_site.settings",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.log_path = log_path or Path(_LOG_DIR.name) / f"{args[0]}-{id(self)}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> LinnetProcess:
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *self.args], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], *, timeout: float = 30, what: str = "condition") -> None:
        """Poll `condition`, failing early with the process output if the process died."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                raise AssertionError(f"process exited ({self.proc.returncode}) before {what}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.output()}")
            try:
                self.proc.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass

    def wait_for_port(self, port: int, timeout: float = 30) -> None:
        self.wait_for(lambda: port_open(port), timeout=timeout, what=f"port {port}")

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def kill(self) -> int:
        return self.stop(sig=signal.SIGKILL)


def database_url_for_tests() -> str:
    """The database this test run uses, as a DATABASE_URL for a child process."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{database['NAME']}"
    password = f":{database['PASSWORD']}" if database.get("PASSWORD") else ""
    host = f"{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}"
    return f"postgres://{database['USER']}{password}@{host}/{database['NAME']}"


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "linnet_site.settings", **env},
        check=True,
    )
