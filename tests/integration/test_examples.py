"""The example consumers, run as programs against real Redis and a real PostgreSQL (127.0.0.1:5432)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib

from tests.factories import article
from worker.stream import Retention, publish_article

ROOT = Path(__file__).parents[2]
PG = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def run_example(module: str, redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    return subprocess.run([sys.executable, "-m", module, "--timeout", "1", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)


def fill(r: redis_lib.Redis) -> None:
    keep = Retention(maxlen=1000)
    day1 = article(1).model_copy(update={"fetched_at": datetime(2026, 3, 1, 23, 0, tzinfo=UTC)})
    publish_article(r, "articles", "t:", day1, retention=keep, marker_ttl=100)
    for n in (2, 3):
        publish_article(r, "articles", "t:", article(n), retention=keep, marker_ttl=100)
    publish_article(r, "articles", "t:", article(2, "Bản sửa."), retention=keep, marker_ttl=100)  # revision 2


def test_jsonl_archive_rotates_by_day(redis_url: str, r: redis_lib.Redis, tmp_path: Path) -> None:
    fill(r)
    out = run_example("examples.jsonl_archive", redis_url, "--dir", str(tmp_path), "--group", "arch")
    assert "archived 4 articles" in out.stdout
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files[0] == "articles-2026-03-01.jsonl" and len(files) == 2
    lines = [json.loads(x) for p in sorted(tmp_path.iterdir()) for x in p.read_text().splitlines()]
    assert [(a["id"][-1], a["revision"]) for a in lines] == [("1", 1), ("2", 1), ("3", 1), ("2", 2)]
    assert r.xpending("articles", "arch")["pending"] == 0
    again = run_example("examples.jsonl_archive", redis_url, "--dir", str(tmp_path), "--group", "arch")
    assert "archived 0 articles" in again.stdout  # everything was acked: nothing read twice


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{PG}?options=-csearch_path%3D{schema}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def test_postgres_upsert_keeps_the_latest_revision(redis_url: str, r: redis_lib.Redis, pg_dsn: str) -> None:
    fill(r)
    out = run_example("examples.postgres_upsert", redis_url, "--dsn", pg_dsn, "--group", "pg")
    assert "stored 4 articles" in out.stdout
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT right(id, 1), revision, body->>'text' FROM articles ORDER BY id").fetchall()
    assert rows == [("1", 1, "Nội dung"), ("2", 2, "Bản sửa."), ("3", 1, "Nội dung")]
    # Replaying history re-delivers revision 1 of article 2 after revision 2: the table keeps revision 2.
    r.xgroup_setid("articles", "pg", "0")
    run_example("examples.postgres_upsert", redis_url, "--dsn", pg_dsn, "--group", "pg")
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*), max(revision) FROM articles").fetchone() == (3, 2)
        assert conn.execute("SELECT body->>'text' FROM articles WHERE right(id, 1) = '2'").fetchone() == ("Bản sửa.",)
