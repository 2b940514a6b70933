"""A consumer killed mid-batch: `ingest consume` SIGKILLed while it holds messages it read and has not acked;
another consumer of the group takes them over. Nothing is lost; the taken-over messages are delivered again.

The killed consumer is stuck mid-batch on purpose: its stdout is a pipe nobody reads, so it blocks writing an
article it already received, with the rest of its batch pending.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis as redis_lib

from tasks.stack import PrivateRedis
from tests.chaos.harness import STREAM, report, wait_until
from tests.factories import article
from worker.consumer import subscribe
from worker.stream import Retention, publish_article


def test_consumer_killed_mid_batch_its_pending_messages_go_to_another(
        private_redis: PrivateRedis, rclient: redis_lib.Redis, tmp_path: Path) -> None:
    r, n = rclient, 60
    for i in range(n):
        publish_article(r, STREAM, "ingest:", article(i, "Nội dung " * 2000), retention=Retention(10_000),
                        marker_ttl=3600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    env.update({"REDIS_URL": private_redis.url, "INGEST_METRICS_PORT": "0"})
    victim = subprocess.Popen([sys.executable, "-m", "tasks.cli", "consume", "--group", "g", "--consumer", "c1",
                               "--from-start"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        wait_until(lambda: any(g["name"] == "g" and g["pending"] for g in r.xinfo_groups(STREAM)), 30,
                   "the consumer to read a batch")
        time.sleep(1)  # it is blocked on its full stdout now, mid-batch
        pending = {p["message_id"] for p in r.xpending_range(STREAM, "g", "-", "+", 100, consumername="c1")}
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(10)
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(10)
        assert victim.stdout is not None
        printed = victim.stdout.read().decode().count("\n")
        victim.stdout.close()
    time.sleep(0.3)
    taken = list(subscribe(r, STREAM, "g", "c2", idle_timeout=1.0, claim_idle_ms=200))
    for msg in taken:
        msg.ack()
    delivered = {m.entry_id for m in taken}
    again = {m.entry_id for m in taken if m.deliveries >= 2}
    acked_by_victim = {eid for eid, _f in r.xrange(STREAM)} - delivered
    report("consumer SIGKILL", articles=n, acked_by_killed=len(acked_by_victim), printed_by_killed=printed,
           pending_at_kill=len(pending), taken_over=len(again), delivered_to_second=len(taken))
    assert pending, "the consumer had nothing pending: the test proved nothing"
    assert again == pending  # every message the dead consumer held went to the other one
    assert len(acked_by_victim) + len(delivered) == n  # each article acked by one of the two
    assert len(acked_by_victim) <= printed <= len(acked_by_victim) + 1  # acked only once written out
    assert r.xpending(STREAM, "g")["pending"] == 0
