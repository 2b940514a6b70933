"""All Celery wiring in one place: the app, its configuration, queues, the beat schedule, and signals.

Task names are explicit and stable (`news.*`) because queued messages outlive refactors.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from celery import Celery
from celery.signals import (
    after_task_publish,
    setup_logging,
    worker_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from config import Settings, load_settings
from tasks.logs import configure_logging
from tasks.runtime import Runtime

# Queues are Redis keys in the broker's database: namespaced so they never collide with the stream.
FEEDS_QUEUE = "news.feeds"
ARTICLES_QUEUE = "news.articles"
QUEUES = (FEEDS_QUEUE, ARTICLES_QUEUE)
TASK_ROUTES = {
    "news.schedule_due_feeds": {"queue": FEEDS_QUEUE},
    "news.poll_feed": {"queue": FEEDS_QUEUE},
    "news.ingest_article": {"queue": ARTICLES_QUEUE},
    "news.ingest_batch": {"queue": ARTICLES_QUEUE},
}

# The worker runs its tasks on threads of one process. A thread back from a socket waits for the GIL while another
# parses a feed or builds an article, up to the switch interval (5 ms by default): at the cold start, when every
# feed is parsed at once, the consumer took one message per 7-12 ms. At 1 ms the throughput benchmark ran faster at
# 200 ms latency in 6 of 6 alternating pairs (+0.01 to +0.08 of the ceiling), for no more CPU per article.
GIL_SWITCH_SECONDS = 0.001

app = Celery("news", include=["tasks.poll", "tasks.ingest"])
_runtime: Runtime | None = None
log = logging.getLogger(__name__)


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        # Unacked tasks come back after this long if their worker died (late acks below). kombu only re-queues
        # them when it sweeps the unacked set (by default every 10 s x 10 = 100 s): sweep at a tenth of the
        # timeout, so a dead worker's tasks return within about 1.1 x INGEST_REDELIVERY_TIMEOUT.
        "broker_transport_options": {
            "visibility_timeout": settings.redelivery_timeout,
            "unacked_restore_interval": max(1, settings.redelivery_timeout // 10),
            "unacked_restore_throttle": 1,
            # The sweep runs under a lock in Redis; a worker killed mid-sweep leaves it until it expires (kombu's
            # default: 300 s) and no worker sweeps meanwhile. Expire it with the sweep's own period: an overlapping
            # second sweep is harmless (each re-queue is a WATCH/MULTI transaction on the unacked hash).
            "unacked_mutex_expire": max(1, settings.redelivery_timeout // 10),
        },
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": ARTICLES_QUEUE,
        "task_routes": TASK_ROUTES,
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "beat_schedule": {
            "schedule-due-feeds": {
                "task": "news.schedule_due_feeds",
                "schedule": settings.tick_seconds,
                "options": {"expires": max(settings.tick_seconds * 2, 5.0)},
            }
        },
    }


def configure(settings: Settings) -> Runtime:
    """Point the app and the per-process runtime at `settings` (called at import, and by tests)."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
    app.conf.update(celery_config(settings))
    _runtime = Runtime(settings)
    return _runtime


def runtime() -> Runtime:
    if _runtime is None:
        return configure(load_settings())
    return _runtime


@setup_logging.connect
def _setup_logging(loglevel: str | None = None, **_: Any) -> None:
    # Connecting here replaces Celery's own logging set-up, in workers and in beat alike.
    settings = runtime().settings
    configure_logging(loglevel or settings.log_level, settings.log_format)


@after_task_publish.connect(sender="news.schedule_due_feeds")
def _scheduler_ticked(**_: Any) -> None:
    # Runs in the beat process each time it sends a tick: `ingest health` reads it to tell beat is alive.
    rt = runtime()
    rt.redis.set(rt.settings.key("scheduler", "last_tick"), f"{time.time():.3f}")


@worker_init.connect
def _shorter_gil_switch(**_: Any) -> None:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)


@worker_ready.connect
def _warm_extraction_pool(**_: Any) -> None:
    runtime().warm_up()


@worker_shutdown.connect
@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    if _runtime is not None:
        _runtime.close()


configure(load_settings())
