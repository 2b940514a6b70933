"""The seen-set: which article URLs were already handed on, so a feed poll fans each out once.

One Redis key per article id with a TTL (the seen window); about 100 bytes of Redis memory per URL.
"""

from __future__ import annotations

import redis


def seen_key(prefix: str, article_id: str) -> str:
    return f"{prefix}seen:{article_id}"


def unseen(client: redis.Redis, prefix: str, article_ids: list[str]) -> list[str]:
    """The ids among `article_ids` not yet seen (order kept)."""
    if not article_ids:
        return []
    pipe = client.pipeline(transaction=False)
    for aid in article_ids:
        pipe.exists(seen_key(prefix, aid))
    flags = pipe.execute()
    return [aid for aid, flag in zip(article_ids, flags, strict=True) if not flag]


def mark_seen(client: redis.Redis, prefix: str, article_ids: list[str], ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for aid in article_ids:
        pipe.set(seen_key(prefix, aid), 1, ex=ttl_seconds)
    pipe.execute()


def listed_key(prefix: str, article_id: str) -> str:
    return f"{prefix}listed:{article_id}"


def note_listing(client: redis.Redis, prefix: str, feed_url: str, article_ids: list[str], ttl_seconds: int) -> None:
    pipe = client.pipeline(transaction=False)
    for aid in article_ids:
        pipe.sadd(listed_key(prefix, aid), feed_url)
        pipe.expire(listed_key(prefix, aid), ttl_seconds)
    pipe.execute()


def listing_feeds(client: redis.Redis, prefix: str, article_id: str) -> list[str]:
    return sorted(client.smembers(listed_key(prefix, article_id)))
