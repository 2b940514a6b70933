"""The seen-set: which article URLs were already handed on, so a feed poll fans each out once.

One Redis key per article id with a TTL (the seen window); about 100 bytes of Redis memory per URL.
"""

from __future__ import annotations

import redis


def seen_key(prefix: str, article_id: str) -> str:
    return f"{prefix}seen:{article_id}"


def sort_sightings(client: redis.Redis, prefix: str, versions: dict[str, float]) -> tuple[list[str], list[str]]:
    """Split `versions` (article id -> the feed entry's updated time, 0 if none) into ids never seen before and
    ids seen before whose entry has been updated since (order kept)."""
    if not versions:
        return [], []
    pipe = client.pipeline(transaction=False)
    for aid in versions:
        pipe.get(seen_key(prefix, aid))
    new, updated = [], []
    for (aid, version), stored in zip(versions.items(), pipe.execute(), strict=True):
        if stored is None:
            new.append(aid)
        elif version > float(stored or 0):
            updated.append(aid)
    return new, updated


def mark_seen(client: redis.Redis, prefix: str, versions: dict[str, float], ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for aid, version in versions.items():
        pipe.set(seen_key(prefix, aid), version, ex=ttl_seconds)
    pipe.execute()


def listed_key(prefix: str, article_id: str) -> str:
    return f"{prefix}listed:{article_id}"


def note_listing(client: redis.Redis, prefix: str, feed_url: str, article_ids: list[str], ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for aid in article_ids:
        pipe.sadd(listed_key(prefix, aid), feed_url)
        pipe.expire(listed_key(prefix, aid), ttl_seconds)
    pipe.execute()
