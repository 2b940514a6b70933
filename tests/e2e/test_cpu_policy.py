"""The CPU scheduling policy of `ingest run`'s processes (tasks.cpu): the scheduler, the worker's threads and the
private Redis under SCHED_BATCH, the extraction processes under the default policy; all default with
INGEST_SCHED_BATCH=false."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml

from tasks.cpu import default_policy, yield_to_extraction
from tasks.stack import PrivateRedis, free_port

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")


def policy_in_thread(*steps: object) -> tuple[int, int]:
    """Run `steps` on a new thread; its policy after them, and that of a thread it then starts."""
    seen: list[int] = []

    def child() -> None:
        seen.append(os.sched_getscheduler(0))

    def body() -> None:
        for step in steps:
            step()  # type: ignore[operator]
        seen.append(os.sched_getscheduler(0))
        t = threading.Thread(target=child)
        t.start()
        t.join()

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return seen[0], seen[1]


def test_a_thread_yields_to_extraction_and_its_threads_inherit_it() -> None:
    assert policy_in_thread(yield_to_extraction) == (os.SCHED_BATCH, os.SCHED_BATCH)
    assert policy_in_thread(yield_to_extraction, default_policy) == (os.SCHED_OTHER, os.SCHED_OTHER)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the helper threads changed
    assert not yield_to_extraction(2**22 + 12345)  # no such process: False, no error


@pytest.mark.parametrize("batch", [True, False])
def test_private_redis_policy(tmp_path: Path, batch: bool) -> None:
    server = PrivateRedis(tmp_path / "redis", free_port(), sched_batch=batch).start()
    try:
        assert server.proc is not None
        assert os.sched_getscheduler(server.proc.pid) == (os.SCHED_BATCH if batch else os.SCHED_OTHER)
    finally:
        server.stop()


def policies(proc: psutil.Process) -> set[int]:
    return {os.sched_getscheduler(t.id) for t in proc.threads()}


@pytest.mark.parametrize("batch", [True, False])
def test_ingest_run_processes(tmp_path: Path, batch: bool) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(yaml.safe_dump({"feeds": [{"url": "http://127.0.0.1:9/rss", "interval": 3600}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    env.update({"INGEST_VAR_DIR": str(tmp_path / "var"), "INGEST_PRIVATE_REDIS_PORT": str(free_port()),
                "INGEST_EXTRACT_PROCESSES": "1", "INGEST_FETCH_CONCURRENCY": "4", "INGEST_METRICS_PORT": "0",
                "INGEST_SCHED_BATCH": str(batch).lower()})
    run = subprocess.Popen([sys.executable, "-m", "tasks.cli", "run", "--config", str(config)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        roles: dict[str, psutil.Process] = {}
        deadline = time.monotonic() + 60
        while len(roles) < 4:  # the extraction process starts once the worker is ready
            assert time.monotonic() < deadline, f"only {sorted(roles)} started"
            assert run.poll() is None
            for p in psutil.Process(run.pid).children(recursive=True):
                cmd = " ".join(p.cmdline())
                role = next((r for key, r in (("redis-server", "redis"), ("cli scheduler", "scheduler"),
                                              ("cli worker", "worker"), ("spawn_main", "extraction"))
                             if key in cmd), None)
                if role:
                    roles[role] = p
            time.sleep(0.2)
        batch_or_not = {os.SCHED_BATCH} if batch else {os.SCHED_OTHER}
        assert policies(roles["scheduler"]) == batch_or_not
        # Celery starts its pool's threads on demand: the feed's poll (a tick after start) starts one.
        while len(roles["worker"].threads()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(roles["worker"].threads()) >= 2
        assert policies(roles["worker"]) == batch_or_not  # every thread, those started later too
        assert os.sched_getscheduler(roles["redis"].pid) == next(iter(batch_or_not))
        # The one that extracts: it starts under the worker's policy and leaves it before loading trafilatura.
        while os.sched_getscheduler(roles["extraction"].pid) != os.SCHED_OTHER and time.monotonic() < deadline:
            time.sleep(0.1)
        assert os.sched_getscheduler(roles["extraction"].pid) == os.SCHED_OTHER
    finally:
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
