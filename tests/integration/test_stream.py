"""The stream contract on a real redis-server: publish once, updates, retention, groups, dead letters, replay."""

from __future__ import annotations

import threading
import time

import redis as redis_lib

from tests.factories import article
from worker.consumer import replay, subscribe
from worker.models import Article
from worker.stream import EVENT_CREATED, EVENT_UPDATED, Retention, content_hash, is_published, publish_article

P = "t:"
KEEP = Retention(maxlen=1000)


def url_of(r: redis_lib.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"


def test_publish_once_even_when_racing(r: redis_lib.Redis) -> None:
    a = article(1)
    results = []

    def publish() -> None:
        client = redis_lib.Redis.from_url(url_of(r), decode_responses=True)
        results.append(publish_article(client, "s", P, a, retention=KEEP, marker_ttl=100))

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.xlen("s") == 1
    assert sum(p.new for p in results) == 1 and len({p.entry_id for p in results}) == 1
    assert is_published(r, P, a.id)
    entry = r.xrange("s")[0][1]
    assert (entry["event"], entry["id"], entry["site"], entry["revision"]) == (EVENT_CREATED, a.id, "x.vn", "1")
    assert Article.from_json(entry["article"]) == a


def test_changed_text_is_an_update_with_a_revision_unchanged_is_nothing(r: redis_lib.Redis) -> None:
    first = publish_article(r, "s", P, article(1, "Bản đầu."), retention=KEEP, marker_ttl=100)
    same = publish_article(r, "s", P, article(1, "Bản   đầu."), retention=KEEP, marker_ttl=100)  # whitespace only
    second = publish_article(r, "s", P, article(1, "Bản sửa, có thêm một câu."), retention=KEEP, marker_ttl=100)
    third = publish_article(r, "s", P, article(1, "Bản sửa lần hai."), retention=KEEP, marker_ttl=100)
    assert (first.revision, same.new, second.revision, third.revision) == (1, False, 2, 3)
    entries = [f for _id, f in r.xrange("s")]
    assert [(e["event"], e["revision"]) for e in entries] == [(EVENT_CREATED, "1"), (EVENT_UPDATED, "2"),
                                                              (EVENT_UPDATED, "3")]
    latest = Article.from_json(entries[-1]["article"])
    assert (latest.revision, latest.text) == (3, "Bản sửa lần hai.")


def test_a_content_hash_given_by_the_caller_is_the_one_compared(r: redis_lib.Redis) -> None:
    a = article(1, "Bản đầu.")
    first = publish_article(r, "s", P, a, retention=KEEP, marker_ttl=100, known_hash=content_hash(a))
    again = publish_article(r, "s", P, a, retention=KEEP, marker_ttl=100)  # computed here: the same hash
    told_changed = publish_article(r, "s", P, a, retention=KEEP, marker_ttl=100, known_hash="0" * 32)
    assert (first.new, again.new, told_changed.revision) == (True, False, 2)


def test_retention_by_count_and_by_age(r: redis_lib.Redis) -> None:
    for n in range(3000):
        publish_article(r, "count", P, article(n), retention=Retention(maxlen=1000), marker_ttl=100)
    assert 1000 <= r.xlen("count") < 1300  # MAXLEN ~ trims whole radix-tree nodes, never below the bound
    two_hours_ago = int((time.time() - 7200) * 1000)
    for i in range(250):
        r.xadd("age", {"old": "1"}, id=f"{two_hours_ago + i}-0")
    publish_article(r, "age", P, article(5000), retention=Retention(maxlen=10**6, max_age_seconds=3600),
                    marker_ttl=100)
    kept = [f for _id, f in r.xrange("age")]
    # MINID ~ drops whole nodes (100 entries each here) older than an hour; the new entry stays.
    assert len(kept) <= 101 and kept[-1]["id"] == article(5000).id


def test_consumer_killed_mid_batch_loses_nothing(r: redis_lib.Redis) -> None:
    for n in range(5):
        publish_article(r, "s", P, article(n), retention=KEEP, marker_ttl=100)
    dead = subscribe(r, "s", "g", "dead", from_start=True, idle_timeout=0.2, batch=3)
    taken = [next(dead).article.id for _ in range(3)]  # delivered, never acked: the consumer "dies"
    time.sleep(0.2)
    alive = list(subscribe(r, "s", "g", "alive", idle_timeout=0.5, claim_idle_ms=100))
    assert sorted(m.article.id for m in alive) == sorted(article(n).id for n in range(5))
    assert {m.article.id for m in alive if m.deliveries == 2} == set(taken)
    for m in alive:
        m.ack()
    assert r.xpending("s", "g")["pending"] == 0


def test_consumer_resumes_its_own_pending_after_restart(r: redis_lib.Redis) -> None:
    publish_article(r, "s", P, article(1), retention=KEEP, marker_ttl=100)
    first = next(subscribe(r, "s", "g", "c1", from_start=True, idle_timeout=0.2))
    again = next(subscribe(r, "s", "g", "c1", idle_timeout=0.2, claim_idle_ms=60_000))
    assert again.entry_id == first.entry_id and again.deliveries == 2
    again.ack()
    assert list(subscribe(r, "s", "g", "c1", idle_timeout=0.2)) == []


def test_poison_message_goes_to_the_dead_letter_stream(r: redis_lib.Redis) -> None:
    publish_article(r, "s", P, article(1), retention=KEEP, marker_ttl=100)
    r.xadd("s", {"event": "article.created", "article": '{"not": "an article"}'})
    publish_article(r, "s", P, article(2), retention=KEEP, marker_ttl=100)
    # A consumer that crashes on article 1 every time: it never acks, restarts, gets it again.
    for _ in range(2):
        msgs = subscribe(r, "s", "g", "c", from_start=True, idle_timeout=0.2, max_deliveries=2)
        assert next(msgs).article.id == article(1).id
    rest = list(subscribe(r, "s", "g", "c", idle_timeout=0.3, max_deliveries=2))
    assert [(m.article.id, m.deliveries) for m in rest] == [(article(2).id, 2)]  # innocent: not dead-lettered
    dead = [f for _id, f in r.xrange("s:dead")]
    assert [(d.get("id"), d["dead_reason"][:7]) for d in dead] == [(article(1).id, "max_del"), (None, "invalid")]
    assert dead[0]["dead_group"] == "g" and int(dead[0]["dead_deliveries"]) == 3
    rest[0].ack()
    assert r.xpending("s", "g")["pending"] == 0


def test_replay_returns_history_in_order(r: redis_lib.Redis) -> None:
    ids = [publish_article(r, "s", P, article(n), retention=KEEP, marker_ttl=100).entry_id for n in range(6)]
    for m in subscribe(r, "s", "g", "c", from_start=True, idle_timeout=0.2):
        m.ack()
    assert list(subscribe(r, "s", "g", "c", idle_timeout=0.2)) == []
    replay(r, "s", "g", ids[3])
    assert [m.entry_id for m in subscribe(r, "s", "g", "c", idle_timeout=0.2)] == ids[3:]
    replay(r, "s", "g", "0")
    assert [m.entry_id for m in subscribe(r, "s", "g", "c2", idle_timeout=0.2)] == ids


def test_status_tells_how_much_a_slow_group_lost_to_retention(r: redis_lib.Redis) -> None:
    from tasks.metrics import stream_report

    for n in range(10):
        publish_article(r, "s", P, article(n), retention=KEEP, marker_ttl=100)
    ahead = subscribe(r, "s", "ahead", "c", from_start=True, idle_timeout=0.2)
    for m in ahead:
        m.ack()
    behind = subscribe(r, "s", "behind", "c", from_start=True, idle_timeout=0.2)
    next(behind).ack()  # read 1 of 10
    later = subscribe(r, "s", "later", "c", from_start=False, idle_timeout=0.2)
    assert list(later) == []  # a group that starts from now
    r.xtrim("s", maxlen=4, approximate=False)  # 6 trimmed
    groups = {g["name"]: g for g in stream_report(r, "s", "s:dead")["groups"]}
    assert groups["ahead"]["missed_trimmed_entries"] == 0
    assert groups["behind"]["missed_trimmed_entries"] == 5
    assert groups["later"]["missed_trimmed_entries"] == 0 and groups["later"]["lag"] == 0
