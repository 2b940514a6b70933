"""Recorded failures: one entry per article or feed that could not be ingested, on a capped Redis stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis


def failures_key(prefix: str) -> str:
    return prefix + "failures"


def record_failure(
    client: redis.Redis, prefix: str, *, url: str, feed: str | None, stage: str, reason: str,
    detail: str = "", attempts: int = 1, maxlen: int = 100_000,
) -> None:
    record = {
        "url": url,
        "feed": feed or "",
        "stage": stage,
        "reason": reason,
        "detail": detail[:500],
        "attempts": str(attempts),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    client.xadd(failures_key(prefix), record, maxlen=maxlen, approximate=True)


def list_failures(client: redis.Redis, prefix: str, max_count: int = 100) -> list[dict[str, object]]:
    """Most recent first."""
    rows = client.xrevrange(failures_key(prefix), count=max_count)
    out: list[dict[str, object]] = []
    for _entry_id, fields in rows:
        row: dict[str, object] = dict(fields)
        row["attempts"] = int(str(row.get("attempts") or 1))
        row["feed"] = row.get("feed") or None
        out.append(row)
    return out


def failure_json(row: dict[str, object]) -> str:
    return json.dumps(row, ensure_ascii=False)
