"""The `ingest` command as a user runs it: `ingest run` in the background, then consume, status, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from demo.site import LocalSite, load_manifest, serve_news_site
from tasks.stack import free_port, redis_answers

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "article.schema.json").read_text())


def ingest(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tasks.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    e.update({"REDIS_URL": redis_url, "INGEST_ALLOW_PRIVATE_NETWORKS": "true", "INGEST_TICK_SECONDS": "1",
              "INGEST_VAR_DIR": str(tmp_path / "var"), "INGEST_EXTRACT_PROCESSES": "1",
              "INGEST_RATE_LIMIT": "1000", "INGEST_HOST_CONCURRENCY": "64"})
    return e


def feeds_file(site: LocalSite, path: Path) -> Path:
    feeds = serve_news_site(site)
    path.write_text(yaml.safe_dump({"feeds": [{"url": u, "section": s} for u, s in feeds.items()]},
                                   allow_unicode=True))
    return path


def test_run_consume_status_and_warm_shutdown(env: dict[str, str], site: LocalSite, tmp_path: Path) -> None:
    config = feeds_file(site, tmp_path / "feeds.yaml")
    expected = load_manifest()[2]
    run = subprocess.Popen([sys.executable, "-m", "tasks.cli", "run", "--config", str(config)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out = ingest("consume", "--group", "me", "--from-start", "--max", str(len(expected)), "--timeout", "60",
                     env=env)
        lines = out.stdout.splitlines()
        assert len(lines) == len(expected), out.stderr
        got = [json.loads(line) for line in lines]
        for article in got:
            jsonschema.validate(article, SCHEMA)
        assert sorted(a["title"] for a in got) == sorted(a.title for a in expected)
        assert {a["section"] for a in got} == {"Thời sự", "Pháp luật", "Kinh doanh", "Sức khỏe"}

        status = json.loads(ingest("status", "--json", env=env).stdout)
        assert status["stream"]["length"] == len(expected)
        assert [(g["name"], g["pending"]) for g in status["stream"]["groups"]] == [("me", 0)]
        assert len(status["feeds"]) == 4 and all(f["last_result"] == "ok" for f in status["feeds"])
        assert ingest("failures", env=env).stdout == ""
        assert "stream articles: 6 entries, 0 dead letters" in ingest("status", env=env).stdout
        # Replay: the group reads everything again, in order; --pretty for people.
        assert ingest("replay", "--group", "me", "--from", "2000-01-01T00:00:00Z", env=env).returncode == 0
        again = ingest("consume", "--group", "me", "--max", "6", "--timeout", "5", env=env).stdout.splitlines()
        assert [json.loads(x)["id"] for x in again] == [a["id"] for a in got]
        assert ingest("replay", "--group", "me", "--from", "0", env=env).returncode == 0
        pretty = ingest("consume", "--group", "me", "--max", "1", "--timeout", "5", "--pretty", env=env).stdout
        assert pretty.startswith("[article.created r1]") and got[0]["title"] in pretty
        assert ingest("replay", "--group", "me", "--from", "yesterday", env=env).returncode == 2
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(60)
    assert code == 0, run.stdout.read().decode() if run.stdout else ""


def test_feeds_commands(env: dict[str, str]) -> None:
    url = "https://example.vn/rss/thoi-su.rss"
    assert ingest("feeds", "add", url, "--section", "Thời sự", "--interval", "120", env=env).returncode == 0
    listed = [json.loads(x) for x in ingest("feeds", "list", "--json", env=env).stdout.splitlines()]
    assert [(f["url"], f["section"], f["status"]) for f in listed] == [(url, "Thời sự", "active")]
    assert ingest("feeds", "pause", url, env=env).returncode == 0
    assert json.loads(ingest("feeds", "list", "--json", env=env).stdout)["status"] == "paused"
    assert ingest("feeds", "remove", url, env=env).returncode == 0
    assert ingest("feeds", "list", env=env).stdout == ""
    bad = ingest("feeds", "add", "javascript:alert(1)", env=env)
    assert bad.returncode != 0 and "not a feed URL" in bad.stderr
    assert "no such feed" in ingest("feeds", "remove", url, env=env).stderr


def test_extract_files_without_redis(tmp_path: Path) -> None:
    page = Path(__file__).parents[1] / "data" / "site" / "pages" / "vnexpress_2025-10-22_fundus.html"
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens there: not needed
    out = ingest("extract", "--url", "https://vnexpress.net/a-4954454.html?utm_source=x", str(page),
                 str(tmp_path / "missing.html"), env=env)
    assert out.returncode == 1  # one input failed, the other was still printed
    article = json.loads(out.stdout)
    jsonschema.validate(article, SCHEMA)
    assert article["url"] == "https://vnexpress.net/a-4954454.html"
    assert "missing.html" in out.stderr


def test_bad_setting_fails_fast_naming_the_variable() -> None:
    out = ingest("status", env={**os.environ, "INGEST_TICK_SECONDS": "soon"})
    assert out.returncode != 0 and "INGEST_TICK_SECONDS" in out.stderr


def test_run_starts_a_private_append_only_redis_without_redis_url(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INGEST_") and k != "REDIS_URL"}
    env.update({"INGEST_VAR_DIR": str(tmp_path / "var"), "INGEST_PRIVATE_REDIS_PORT": str(port),
                "INGEST_FEEDS_FILE": str(tmp_path / "feeds.yaml"), "INGEST_EXTRACT_PROCESSES": "0"})
    (tmp_path / "feeds.yaml").write_text("feeds: []\n")
    run = subprocess.Popen([sys.executable, "-m", "tasks.cli", "run"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while not redis_answers(url) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert redis_answers(url)
        assert list((tmp_path / "var" / "redis").glob("appendonly*"))
    finally:
        run.send_signal(signal.SIGINT)
        assert run.wait(60) == 0
    assert not redis_answers(url)  # stopped with the pipeline
