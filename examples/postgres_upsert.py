"""Example consumer: keep the latest version of every article in a PostgreSQL table.

    python -m examples.postgres_upsert --dsn postgresql://postgres@127.0.0.1/test --group pg

One row per article id; a newer revision replaces an older one and a re-delivered message changes nothing
(the upsert only wins when its revision is at least the stored one). The row is committed before the ack.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Iterable

import psycopg
import redis

from config import load_settings
from worker.consumer import Message, subscribe

SCHEMA = """
CREATE TABLE IF NOT EXISTS articles (
    id           text PRIMARY KEY,
    url          text NOT NULL,
    site         text NOT NULL,
    section      text,
    title        text NOT NULL,
    published_at timestamptz,
    revision     integer NOT NULL,
    body         jsonb NOT NULL
)
"""
UPSERT = """
INSERT INTO articles (id, url, site, section, title, published_at, revision, body)
VALUES (%(id)s, %(url)s, %(site)s, %(section)s, %(title)s, %(published_at)s, %(revision)s, %(body)s)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url, site = EXCLUDED.site, section = EXCLUDED.section, title = EXCLUDED.title,
    published_at = EXCLUDED.published_at, revision = EXCLUDED.revision, body = EXCLUDED.body
WHERE articles.revision <= EXCLUDED.revision
"""


def store(messages: Iterable[Message], conn: psycopg.Connection, max_count: int | None = None) -> int:
    conn.execute(SCHEMA)
    conn.commit()
    count = 0
    for msg in messages:
        a = msg.article
        conn.execute(UPSERT, {"id": a.id, "url": a.url, "site": a.site.domain, "section": a.section,
                              "title": a.title, "published_at": a.published_at, "revision": a.revision,
                              "body": a.to_json()})
        conn.commit()
        msg.ack()
        count += 1
        if max_count is not None and count >= max_count:
            break
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--group", default="postgres")
    ap.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    args = ap.parse_args()
    settings = load_settings()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    with psycopg.connect(args.dsn) as conn:
        n = store(subscribe(client, settings.stream, args.group, args.consumer, from_start=True,
                            idle_timeout=args.timeout), conn)
    print(f"stored {n} articles")


if __name__ == "__main__":
    main()
