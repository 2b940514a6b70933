"""Process management for `ingest run` and `ingest demo`: a private redis-server, and the scheduler and
worker processes (the same commands docker-compose runs), with signals forwarded for a warm shutdown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import redis

SCHEDULER_CMD = ["scheduler"]
WORKER_CMD = ["worker"]


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_answers(url: str, timeout: float = 0.5) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


@dataclass
class PrivateRedis:
    """A redis-server of our own, append-only, data in `data_dir`. Stopped with `stop()`."""

    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError(
                "redis-server is not on PATH. Install Redis (e.g. `apt-get install redis-server`) "
                "or point REDIS_URL at a running Redis, e.g. REDIS_URL=redis://127.0.0.1:6379/0"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir.resolve()),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
             "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise StackError(f"redis-server exited at start; see {self.data_dir / 'redis.log'}")
            if redis_answers(self.url):
                return self
            time.sleep(0.05)
        self.stop()
        raise StackError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def role_under_worker(command: str, child_of_worker: bool) -> str:
    """What a process under the worker is: `forkserver` (the extraction processes' fork server), `tracker`
    (multiprocessing's resource tracker) or `extraction`. By its command line if the worker started it; the fork
    server's children are extraction processes, and keep its command line."""
    if child_of_worker:
        for role, mark in (("forkserver", "multiprocessing.forkserver import main"),
                           ("tracker", "multiprocessing.resource_tracker import main")):
            if mark in command:
                return role
    return "extraction"


def ingest_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tasks.cli", *args]


@dataclass
class Stack:
    """The scheduler and worker processes of `ingest run`, started with `env`."""

    env: Mapping[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    stdout: int | None = None

    def start(self) -> Stack:
        for cmd in (SCHEDULER_CMD, WORKER_CMD):
            self.procs.append(subprocess.Popen(
                ingest_command(*cmd), env=dict(self.env), stdout=self.stdout, stderr=self.stdout,
                start_new_session=True,
            ))
        return self

    def signal(self, sig: int) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig) if sig == signal.SIGKILL else p.send_signal(sig)
                except ProcessLookupError:
                    pass

    def wait_all(self, timeout: float | None = None) -> list[int]:
        """Wait for every process; their exit codes (negative: killed by that signal)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        codes = []
        for p in self.procs:
            left = None if deadline is None else max(0.1, deadline - time.monotonic())
            codes.append(p.wait(left))
        return codes

    def wait(self, timeout: float | None = None) -> int:
        """Wait for every process; the first non-zero exit code wins."""
        return next((c for c in self.wait_all(timeout) if c), 0)

    def any_exited(self) -> bool:
        return any(p.poll() is not None for p in self.procs)

    def stop(self, timeout: float = 60.0) -> int:
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.wait(10)
