"""Reading the article stream through a consumer group: at-least-once, acked, replayable.

`subscribe()` yields `Message`s whose `.article` is the validated model; call `.ack()` once handled.
The group is created if missing (from the start of the stream or from now). On start, a consumer first
takes back its own unacked messages; then it claims messages other consumers left unacked for
`claim_idle_ms` (presumed dead), then reads new ones. A message delivered more than `max_deliveries` times
without an ack, or one that is not a valid article, is moved to the dead-letter stream with the reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from pydantic import ValidationError

from worker.models import Article


@dataclass
class Message:
    entry_id: str
    event: str
    article: Article
    deliveries: int
    _client: redis.Redis
    _stream: str
    _group: str

    def ack(self) -> None:
        self._client.xack(self._stream, self._group, self.entry_id)


def ensure_group(client: redis.Redis, stream: str, group: str, from_start: bool) -> bool:
    """Create the group (and the stream) if missing. Returns True if it was created.

    The group is told how many entries it starts after, so Redis can keep its lag (and what it lost to
    retention) exact from the start."""
    entries_read = 0
    if not from_start and client.exists(stream):
        entries_read = int(client.xinfo_stream(stream)["entries-added"])
    try:
        client.xgroup_create(stream, group, id="0" if from_start else "$", mkstream=True, entries_read=entries_read)
        return True
    except redis.ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise


def replay(client: redis.Redis, stream: str, group: str, start: str) -> None:
    """Make `group` read the stream again from entry id `start` (inclusive), e.g. "0" for all history."""
    ensure_group(client, stream, group, from_start=True)
    ms, _, seq = start.partition("-")
    previous = f"{ms}-{int(seq) - 1}" if seq and int(seq) > 0 else f"{max(int(ms) - 1, 0)}-{2**64 - 1}"
    client.xgroup_setid(stream, group, "0" if start in ("0", "0-0") else previous)


def dead_letter(client: redis.Redis, stream: str, group: str, entry_id: str, fields: dict[str, str] | None,
                reason: str, deliveries: int, dead_stream: str) -> None:
    record = dict(fields or {})
    record.update({"dead_reason": reason, "dead_group": group, "dead_original_id": entry_id,
                   "dead_deliveries": str(deliveries)})
    pipe = client.pipeline()
    pipe.xadd(dead_stream, record)
    pipe.xack(stream, group, entry_id)
    pipe.execute()


def _take_pending(client: redis.Redis, stream: str, group: str, consumer: str, *, mine: bool, idle_ms: int,
                  count: int, after: str = "-") -> list[tuple[str, dict[str, str] | None, int]]:
    """Claim pending messages: this consumer's own (after a restart) or other consumers' idle ones."""
    if mine:
        pending = client.xpending_range(stream, group, min=after, max="+", count=count, consumername=consumer)
    else:
        pending = [p for p in client.xpending_range(stream, group, min="-", max="+", count=count, idle=idle_ms)
                   if p["consumer"] != consumer]
    if not pending:
        return []
    counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
    claimed = client.xclaim(stream, group, consumer, 0 if mine else idle_ms, list(counts))
    got = {entry_id: fields for entry_id, fields in claimed}
    # An id pending but deleted from the stream (trimmed) comes back without fields: nothing to deliver.
    return [(mid, got.get(mid), counts[mid] + 1) for mid in counts]


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
    max_deliveries: int = 5,
    dead_stream: str | None = None,
) -> Iterator[Message]:
    """Yield messages forever, or until `idle_timeout` seconds pass without one."""
    ensure_group(client, stream, group, from_start)
    dead_stream = dead_stream or stream + ":dead"
    last_message = time.monotonic()
    own_cursor: str | None = "-"
    while True:
        # Pending messages are taken back one at a time: if the first one crashes the consumer again, the
        # others' delivery counts do not grow with it, so only the poison message reaches the dead letters.
        if own_cursor is not None:
            entries = _take_pending(client, stream, group, consumer, mine=True, idle_ms=0, count=1,
                                    after=own_cursor)
            own_cursor = f"({entries[-1][0]}" if entries else None
        else:
            entries = _take_pending(client, stream, group, consumer, mine=False, idle_ms=claim_idle_ms, count=1)
            if not entries:
                resp = client.xreadgroup(group, consumer, {stream: ">"}, count=batch, block=block_ms)
                entries = [(eid, f, 1) for eid, f in (resp[0][1] if resp else [])]
        got = False
        for entry_id, fields, deliveries in entries:
            if fields is None:
                client.xack(stream, group, entry_id)
                continue
            if deliveries > max_deliveries:
                dead_letter(client, stream, group, entry_id, fields, "max_deliveries", deliveries, dead_stream)
                continue
            try:
                article = Article.from_json(fields["article"])
            except (KeyError, ValidationError, json.JSONDecodeError) as exc:
                dead_letter(client, stream, group, entry_id, fields, f"invalid: {str(exc)[:200]}", deliveries,
                            dead_stream)
                continue
            got = True
            yield Message(entry_id, fields.get("event", "article.created"), article, deliveries, client, stream,
                          group)
        if got:
            last_message = time.monotonic()
        elif idle_timeout is not None and time.monotonic() - last_message >= idle_timeout:
            return
