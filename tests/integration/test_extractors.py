"""The worker's extraction processes (tasks/extractors.py) with small stand-in jobs: answers and errors travel back,
processes are recycled, lines hold `depth` pages, close() lets the pages in flight finish, and processes are forked
from a fork server that preloaded the modules asked for. (The deadline and a crashing page, with real pages:
tests/integration/test_hostile_input.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from demo.site import REPO
from tasks.extractors import ExtractorPool
from worker.errors import PermanentError, TemporaryError

WARMED = "EXTRACTORS_TEST_WARMED"


def warm() -> None:
    os.environ[WARMED] = str(os.getpid())


def job(seconds: float = 0.0, fail: str | None = None) -> tuple[int, str | None]:
    """Runs in an extraction process: sleeps, then raises a PermanentError(fail) or answers (pid, warmed pid)."""
    time.sleep(seconds)
    if fail:
        raise PermanentError(fail, "from the child")
    return os.getpid(), os.environ.get(WARMED)


@pytest.fixture
def pools() -> Iterator[list[ExtractorPool]]:
    made: list[ExtractorPool] = []
    yield made
    for pool in made:
        pool.close()


def make(pools: list[ExtractorPool], processes: int = 1, max_tasks: int = 100, timeout: float = 30.0) -> ExtractorPool:
    pool = ExtractorPool(processes, timeout, max_tasks, initializer=warm)
    pools.append(pool)
    return pool


def test_answers_come_back_from_a_warmed_process_and_errors_keep_their_type(pools: list[ExtractorPool]) -> None:
    pool = make(pools)
    pool.warm_up()
    pid, warmed = pool.run(job)
    assert pid != os.getpid() and warmed == str(pid) and pool.pids() == [pid]
    with pytest.raises(PermanentError) as err:
        pool.run(job, 0.0, "not_an_article")
    assert err.value.reason == "not_an_article"
    assert pool.run(job)[0] == pid  # an error in a job does not end its process


def test_a_process_is_replaced_after_max_tasks_and_the_old_one_exits(pools: list[ExtractorPool]) -> None:
    pool = make(pools, max_tasks=2)
    pids = [pool.run(job)[0] for _ in range(5)]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert not psutil.pid_exists(pids[0])  # retired: its pipe closed, it exited and was reaped
    assert all(warmed == str(pid) for pid, warmed in [pool.run(job)])  # new processes are warmed too


def test_each_process_holds_depth_pages_and_every_page_is_answered(pools: list[ExtractorPool]) -> None:
    pool = make(pools, processes=2)
    pool.warm_up()
    answers: list[int] = []
    threads = [threading.Thread(target=lambda: answers.append(pool.run(job, 0.3)[0])) for _ in range(10)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.15)
    lines = [len(e.line) for e in pool._slots if e is not None]  # noqa: SLF001 - the lines are the point here
    for t in threads:
        t.join(30)
    assert lines == [2, 2]  # one running and one waiting in each pipe; the other six wait for room
    assert len(answers) == 10 and set(answers) == set(pool.pids())
    assert time.monotonic() - started >= 1.5  # 5 pages of 0.3 s per process, one after the other


def test_close_lets_the_pages_in_flight_finish_then_ends_the_processes(pools: list[ExtractorPool]) -> None:
    pool = make(pools)
    pool.warm_up()
    pid = pool.pids()[0]
    answer: list[object] = []
    running = threading.Thread(target=lambda: answer.append(pool.run(job, 1.0)))
    running.start()
    time.sleep(0.3)
    pool.close()
    running.join(10)
    assert answer and answer[0][0] == pid  # type: ignore[index]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(TemporaryError):
        pool.run(job)


_HELD: list[bytearray] = []


def hold(megabytes: int) -> int:
    """Runs in an extraction process: keeps `megabytes` MiB allocated (and touched) for the process's lifetime."""
    _HELD.append(bytearray(megabytes * 2**20))
    return os.getpid()


def test_a_process_whose_memory_passes_max_rss_is_replaced_after_its_page(pools: list[ExtractorPool]) -> None:
    pool = make(pools)
    first = pool.run(hold, 10)
    old = psutil.Process(first)
    pool.max_rss = old.memory_info().rss + 100 * 2**20  # the limit, 100 MiB above what the process holds now
    assert pool.run(hold, 10) == first  # under the limit: the same process
    assert pool.run(hold, 150) == first  # the page that passes the limit still gets its answer
    second = pool.run(job)[0]
    assert second != first and pool.pids() == [second]
    old.wait(10)  # the full one exits
    assert pool.run(hold, 10) == second


def test_without_max_rss_memory_does_not_replace_a_process(pools: list[ExtractorPool]) -> None:
    pool = make(pools)
    first = pool.run(hold, 150)
    assert pool.run(job)[0] == first


def lineage() -> tuple[int, int, int | None]:
    """Runs in an extraction process: its pid, its parent's, and the pid of the process that imported
    tests.preload_probe (None if no process did: this one has not)."""
    probe = sys.modules.get("tests.preload_probe")
    return os.getpid(), os.getppid(), getattr(probe, "LOADED_IN", None)


def _in_fresh_interpreter(script: str) -> object:
    """Run `script` in a new interpreter (the fork server is one per process, and this one's may already run with
    another pool's preload) from the checkout; what it printed, as JSON."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_processes_are_forked_from_one_server_that_imported_the_preload_modules() -> None:
    """Every process, replacements included, starts as a fork of the server, with what it imported: ready in
    milliseconds, not an interpreter's start and imports."""
    me, answers = _in_fresh_interpreter("""
        import json, os
        from tasks.extractors import ExtractorPool
        from tests.integration.test_extractors import lineage
        pool = ExtractorPool(1, 30.0, 2, preload=["tests.preload_probe"])
        print(json.dumps([os.getpid(), [pool.run(lineage) for _ in range(3)]]))
        pool.close()
    """)  # type: ignore[misc]
    (first, server, loaded), again, (third, server3, loaded3) = answers
    assert again[0] == first != third  # replaced after max_tasks (2) pages
    assert loaded == server == server3 != me  # imported once, by the server both are forked from


def preloaded_state() -> tuple[bool, bool, int]:
    """Runs in an extraction process: the extraction stack already loaded, and how many objects the garbage
    collector leaves alone (frozen before the fork)."""
    import gc

    return "trafilatura" in sys.modules, "worker.extract" in sys.modules, gc.get_freeze_count()


def test_the_workers_preload_forks_processes_with_the_extraction_stack_loaded_and_frozen() -> None:
    loaded, extract, frozen = _in_fresh_interpreter("""
        import json
        from tasks.extractors import ExtractorPool
        from tests.integration.test_extractors import preloaded_state
        pool = ExtractorPool(1, 30.0, 10, preload=["tasks.extraction_preload"])
        print(json.dumps(pool.run(preloaded_state)))
        pool.close()
    """)  # type: ignore[misc]
    assert loaded and extract
    assert frozen > 10_000  # the stack's objects: a collection in the process would copy every page they are on
