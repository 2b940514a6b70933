"""Reading the article stream through a consumer group: at-least-once, acked, replayable.

`subscribe()` yields `Message`s whose `.article` is the validated model; call `.ack()` once handled.
The group is created if missing (from the start of the stream or from now). Messages left pending by a
dead consumer are reclaimed after `claim_idle_ms`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis

from worker.models import Article


@dataclass
class Message:
    entry_id: str
    event: str
    article: Article
    _client: redis.Redis
    _stream: str
    _group: str

    def ack(self) -> None:
        self._client.xack(self._stream, self._group, self.entry_id)


def ensure_group(client: redis.Redis, stream: str, group: str, from_start: bool) -> bool:
    """Create the group (and the stream) if missing. Returns True if it was created."""
    try:
        client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def _message(client: redis.Redis, stream: str, group: str, entry_id: str, fields: dict[str, str]) -> Message:
    return Message(entry_id, fields.get("event", "article.created"), Article.from_json(fields["article"]),
                   client, stream, group)


def _claim_from_others(
    client: redis.Redis, stream: str, group: str, consumer: str, idle_ms: int, count: int
) -> list[tuple[str, dict[str, str]]]:
    """Take over messages other consumers left unacked for `idle_ms` (they are presumed dead).

    XPENDING + XCLAIM rather than XAUTOCLAIM, so a consumer never re-takes its own in-flight messages.
    """
    pending = client.xpending_range(stream, group, min="-", max="+", count=count, idle=idle_ms)
    ids = [p["message_id"] for p in pending if p["consumer"] != consumer]
    if not ids:
        return []
    return [e for e in client.xclaim(stream, group, consumer, idle_ms, ids) if e and e[1] is not None]


def subscribe(
    client: redis.Redis,
    stream: str,
    group: str,
    consumer: str,
    *,
    from_start: bool = False,
    block_ms: int = 1000,
    batch: int = 10,
    claim_idle_ms: int = 60_000,
    idle_timeout: float | None = None,
) -> Iterator[Message]:
    """Yield messages forever, or until `idle_timeout` seconds pass without one."""
    ensure_group(client, stream, group, from_start)
    last_message = time.monotonic()
    pending_cursor: str | None = "0"  # first re-read this consumer's own unacked messages (after a restart)
    while True:
        got = False
        if pending_cursor is not None:
            resp = client.xreadgroup(group, consumer, {stream: pending_cursor}, count=batch)
            entries = resp[0][1] if resp else []
            pending_cursor = entries[-1][0] if entries else None
        else:
            entries = _claim_from_others(client, stream, group, consumer, claim_idle_ms, batch)
            if not entries:
                resp = client.xreadgroup(group, consumer, {stream: ">"}, count=batch, block=block_ms)
                entries = resp[0][1] if resp else []
        for entry_id, fields in entries:
            if fields is None:
                continue
            got = True
            yield _message(client, stream, group, entry_id, fields)
        if got:
            last_message = time.monotonic()
        elif idle_timeout is not None and time.monotonic() - last_message >= idle_timeout:
            return
