"""The `ingest` command: run the pipeline, extract one page, read the stream, inspect and manage feeds."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from config import Settings, SettingsError, SourcesError, load_settings, load_sources


def _settings(config: str | None = None, **overrides: Any) -> Settings:
    if config:
        overrides["feeds_file"] = Path(config)
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def _runtime(settings: Settings):  # type: ignore[no-untyped-def]
    from tasks.app import configure

    return configure(settings)


def _seed_feeds(settings: Settings) -> int:
    rt = _runtime(settings)
    try:
        sources = load_sources(settings.feeds_file)
    except SourcesError as exc:
        raise click.ClickException(str(exc)) from None
    for feed in sources.feeds:
        rt.registry.add(feed.url, feed.section, feed.interval or settings.default_interval,
                        min_interval=feed.min_interval, max_interval=feed.max_interval,
                        max_entry_age=feed.max_entry_age)
    return len(sources.feeds)


@click.group()
def main() -> None:
    """News ingestion: section feeds in, clean articles out on a Redis stream."""


@main.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="Feeds file (default config/feeds.yaml).")
def run(config: str | None) -> None:
    """Scheduler and workers in the foreground until Ctrl-C (starts a private Redis if REDIS_URL is unset)."""
    from tasks.stack import PrivateRedis, Stack, StackError, redis_answers

    settings = _settings(config)
    env = dict(os.environ)
    if config:
        env["INGEST_FEEDS_FILE"] = str(Path(config).resolve())
    stack = Stack(env)
    stopping = False

    def forward(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        # SIGTERM is a warm shutdown for Celery, and ends a child that is still starting up cleanly.
        stack.signal(signal.SIGTERM)

    # Handlers first: a Ctrl-C at any point below still stops everything we started.
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    private = None
    try:
        if settings.uses_private_redis:
            if not redis_answers(settings.redis_url):
                try:
                    private = PrivateRedis(settings.var_dir / "redis", settings.private_redis_port).start()
                except StackError as exc:
                    raise click.ClickException(str(exc)) from None
                click.echo(f"started private redis-server on {private.url} (data in {settings.var_dir / 'redis'})")
            env["REDIS_URL"] = settings.redis_url
        elif not redis_answers(settings.redis_url):
            raise click.ClickException(f"Redis does not answer at {settings.redis_url}")
        if not stopping:
            stack.start()
        while not stopping and not stack.any_exited():
            time.sleep(0.2)
        if not stopping:
            click.echo("a pipeline process exited; stopping the others", err=True)
        stack.signal(signal.SIGTERM)  # again: reaches a child started after the signal arrived
        codes = stack.wait_all()
        code = 0 if stopping and all(c in (0, -signal.SIGTERM) for c in codes) else next((c for c in codes if c), 1)
    finally:
        if private is not None:
            private.stop()
    sys.exit(code if code >= 0 else 128 - code)


@main.command()
@click.option("--config", type=click.Path(exists=True, dir_okay=False))
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Prometheus metrics port (default INGEST_METRICS_PORT; 0: off).")
def scheduler(config: str | None, metrics_port: int | None) -> None:
    """Celery beat: seeds feeds from the config, then enqueues due feeds every tick."""
    settings = _settings(config)
    n = _seed_feeds(settings)
    click.echo(f"scheduler: {n} feeds from {settings.feeds_file}")
    from tasks.app import app, runtime
    from tasks.metrics import serve

    # The one scheduler also serves the gauges read from Redis, so each appears once per deployment.
    serve(settings.metrics_port if metrics_port is None else metrics_port, state=runtime)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", settings.log_level,
               "--schedule", str(settings.var_dir / f"beat-{socket.gethostname()}.db")])


@main.command()
@click.option("--concurrency", type=int, help="Fetch threads (default INGEST_FETCH_CONCURRENCY).")
@click.option("--queues", default=None, help="Comma-separated queues (default: all of them).")
@click.option("--name", default=None, help="Worker node name (default news@<host>).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Prometheus metrics port (default INGEST_METRICS_PORT + 1; 0: off).")
def worker(concurrency: int | None, queues: str, name: str | None, metrics_port: int | None) -> None:
    """Celery worker: I/O tasks on threads, extraction in a local pool of processes."""
    settings = _settings()
    _runtime(settings)
    from tasks.app import QUEUES, app
    from tasks.metrics import serve

    if metrics_port is None:
        metrics_port = settings.metrics_port + 1 if settings.metrics_port else 0
    serve(metrics_port)  # tasks run on threads of this process, so its counters are all of them
    queues = queues or ",".join(QUEUES)
    app.worker_main([
        "worker", "--pool", "threads", "--concurrency", str(concurrency or settings.fetch_concurrency),
        "--queues", queues, "--loglevel", settings.log_level, "--hostname", name or "news@%h",
        "--without-gossip", "--without-mingle",
    ])


@main.command()
@click.option("--url", "page_url", help="The page's address, when the input is a file.")
@click.argument("inputs", nargs=-1, required=True)
def extract(page_url: str | None, inputs: tuple[str, ...]) -> None:
    """Extract articles from files or URLs without Redis; one JSON article per line."""
    from tasks.runtime import Runtime
    from worker.article import Origin, build_article
    from worker.charset import decode_html
    from worker.errors import IngestError
    from worker.extract import extract_article
    from worker.fetch import fetch_page
    from worker.urls import canonical_url

    rt = Runtime(_settings())  # no Redis needed: only its HTTP client and limits
    failed = 0
    for item in inputs:
        try:
            if item.startswith(("http://", "https://")):
                resp = fetch_page(rt.http, item, rt.limits(rt.settings.max_page_bytes))
                body, ctype, url = resp.body, resp.headers.get("content-type"), canonical_url(item)
            else:
                body, ctype = Path(item).read_bytes(), None
                url = canonical_url(page_url) if page_url else Path(item).resolve().as_uri()
            page = extract_article(decode_html(body, ctype), url)
            article = build_article(url, page, Origin(), fetched_at=datetime.now(UTC))
            click.echo(article.to_json())
        except (IngestError, OSError) as exc:
            failed += 1
            click.echo(json.dumps({"input": item, "error": str(exc)}, ensure_ascii=False), err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.option("--group", required=True, help="Consumer group name.")
@click.option("--consumer", default=None, help="Consumer name within the group (default: host-pid).")
@click.option("--from-start", is_flag=True, help="A new group starts at the beginning of the stream.")
@click.option("--max", "max_count", type=int, default=None, help="Stop after N articles.")
@click.option("--timeout", type=float, default=None, help="Stop after SECONDS without a new article.")
@click.option("--json", "fmt", flag_value="json", default=True, help="One JSON article per line (default).")
@click.option("--pretty", "fmt", flag_value="pretty", help="A readable summary of each article.")
def consume(group: str, consumer: str | None, from_start: bool, max_count: int | None, timeout: float | None,
            fmt: str) -> None:
    """Read articles through a consumer group; print each, ack after printing."""
    from worker.consumer import subscribe

    settings = _settings()
    rt = _runtime(settings)
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    count = 0
    for msg in subscribe(rt.redis, settings.stream, group, name, from_start=from_start, idle_timeout=timeout,
                         max_deliveries=settings.max_deliveries, dead_stream=settings.dead_letter_stream):
        a = msg.article
        if fmt == "pretty":
            click.echo(f"[{msg.event} r{a.revision}] {a.published_at or '-'}  {a.site.name or a.site.domain}"
                       f" / {a.section or '-'}\n  {a.title}\n  {', '.join(a.authors) or '-'}  {a.url}\n"
                       f"  {a.text[:300]}{'…' if len(a.text) > 300 else ''}\n")
        else:
            click.echo(a.to_json())
        msg.ack()
        count += 1
        if max_count is not None and count >= max_count:
            break


def _stream_id(value: str) -> str:
    """An entry id as given, or an ISO 8601 time turned into the first id at that time."""
    if value == "0" or value.replace("-", "").isdigit():
        return value
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a stream id nor an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{int(when.timestamp() * 1000)}-0"


@main.command()
@click.option("--group", required=True, help="The consumer group that will read again.")
@click.option("--from", "start", required=True, help="Stream entry id (e.g. 1732000000000-0, 0) or ISO time.")
def replay(group: str, start: str) -> None:
    """Make a consumer group re-read the stream from an entry id or a time (what is still retained)."""
    from worker.consumer import replay as replay_from

    settings = _settings()
    entry = _stream_id(start)
    replay_from(_runtime(settings).redis, settings.stream, group, entry)
    click.echo(f"group {group} will read {settings.stream} again from {entry}")


@main.command()
@click.option("--max", "max_count", type=int, default=100, show_default=True)
def failures(max_count: int) -> None:
    """Recorded failures, most recent first, as JSON lines."""
    from worker.failures import failure_json, list_failures

    settings = _settings()
    for row in list_failures(_runtime(settings).redis, settings.key_prefix, max_count):
        click.echo(failure_json(row))


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else "-"


def status_report(settings: Settings) -> dict[str, Any]:
    from tasks.metrics import stream_report  # shared with the Prometheus gauges

    rt = _runtime(settings)
    feeds = sorted(rt.registry.all(), key=lambda f: ({"failing": 0, "gone": 1}.get(f.health, 2), f.url))
    return {
        "stream": stream_report(rt.redis, settings.stream, settings.dead_letter_stream),
        "feeds": [{
            "url": f.url, "section": f.section, "status": f.status, "health": f.health,
            "last_poll": _when(f.last_poll), "last_result": f.last_result, "next_poll": _when(f.next_poll),
            "articles_found": f.articles_found, "consecutive_errors": f.consecutive_errors,
            "last_error": f.last_error, "problem": f.problem, "interval": f.interval,
        } for f in feeds],
    }


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Feeds (failing first), stream length, consumer groups and their pending counts."""
    report = status_report(_settings())
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    s = report["stream"]
    click.echo(f"stream {s['name']}: {s['length']} entries, {s['dead_letters']} dead letters")
    for g in s["groups"]:
        missed = g["missed_trimmed_entries"]
        warn = "" if missed == 0 else f"  (fell behind retention: {missed if missed else 'some'} entries trimmed unread)"
        click.echo(f"  group {g['name']}: pending={g['pending']} lag={g['lag']} consumers={g['consumers']}{warn}")
    click.echo(f"{len(report['feeds'])} feeds")
    click.echo(f"  {'HEALTH':8} {'LAST POLL':25} {'RESULT':14} {'NEXT POLL':25} {'FOUND':>5} {'ERR':>3}  URL")
    for f in report["feeds"]:
        click.echo(f"  {f['health'].upper() if f['health'] in ('failing', 'gone') else f['health']:8} {f['last_poll']:25} "
                   f"{(f['last_result'] or '-'):14} {f['next_poll']:25} {f['articles_found']:>5} "
                   f"{f['consecutive_errors']:>3}  {f['url']}")


def health_problems(settings: Settings, components: set[str], timeout: float) -> list[str]:
    """What is wrong, empty when healthy: Redis reachable, beat ticking, a worker answering a ping."""
    import redis as redis_lib

    rt = _runtime(settings)
    try:
        rt.redis.ping()
    except (redis_lib.ConnectionError, redis_lib.TimeoutError) as exc:
        return [f"redis unreachable at {settings.redis_url}: {exc}"]
    problems = []
    if "scheduler" in components:
        last = rt.redis.get(settings.key("scheduler", "last_tick"))
        age = time.time() - float(last) if last else None
        if age is None or age > 3 * settings.tick_seconds + 5:
            problems.append("scheduler has not ticked " + (f"for {age:.0f}s" if age is not None else "yet"))
    if "worker" in components:
        from tasks.app import app

        if not app.control.ping(timeout=timeout):
            problems.append(f"no worker answered a ping within {timeout}s")
    return problems


@main.command()
@click.option("--component", type=click.Choice(["all", "redis", "scheduler", "worker"]), default="all",
              show_default=True, help="What to check (Redis is always checked).")
@click.option("--timeout", type=float, default=3.0, show_default=True, help="Seconds to wait for a worker ping.")
def health(component: str, timeout: float) -> None:
    """Exit 0 when healthy; otherwise print what is wrong and exit 1 (used by the compose healthchecks)."""
    wanted = {"scheduler", "worker"} if component == "all" else {component}
    problems = health_problems(_settings(), wanted, timeout)
    for p in problems:
        click.echo(f"unhealthy: {p}", err=True)
    if problems:
        sys.exit(1)
    click.echo("healthy")


@main.group()
def feeds() -> None:
    """Manage feeds at runtime (no restart needed)."""


@feeds.command("list")
@click.option("--json", "as_json", is_flag=True)
def feeds_list(as_json: bool) -> None:
    report = status_report(_settings())
    for f in report["feeds"]:
        if as_json:
            click.echo(json.dumps(f, ensure_ascii=False))
        else:
            click.echo(f"{f['status']:7} {f['url']}  section={f['section'] or '-'}")


@feeds.command("add")
@click.argument("url")
@click.option("--section", default=None)
@click.option("--interval", type=click.IntRange(min=1), default=None, help="Seconds between polls.")
def feeds_add(url: str, section: str | None, interval: int | None) -> None:
    from worker.errors import PermanentError

    settings = _settings()
    try:
        fid = _runtime(settings).registry.add(url, section, interval or settings.default_interval)
    except PermanentError as exc:
        raise click.ClickException(f"not a feed URL: {exc}") from None
    click.echo(f"added {fid} {url}")


def _feed_or_fail(settings: Settings, url: str):  # type: ignore[no-untyped-def]
    from worker.errors import PermanentError

    rt = _runtime(settings)
    try:
        state = rt.registry.find(url)
    except PermanentError:
        state = None
    if state is None:
        raise click.ClickException(f"no such feed: {url}")
    return rt, state


@feeds.command("remove")
@click.argument("url")
def feeds_remove(url: str) -> None:
    rt, state = _feed_or_fail(_settings(), url)
    rt.registry.remove(state.fid)
    click.echo(f"removed {state.url}")


@feeds.command("pause")
@click.argument("url")
def feeds_pause(url: str) -> None:
    rt, state = _feed_or_fail(_settings(), url)
    rt.registry.set_status(state.fid, "paused")
    click.echo(f"paused {state.url}")


@feeds.command("resume")
@click.argument("url")
def feeds_resume(url: str) -> None:
    rt, state = _feed_or_fail(_settings(), url)
    rt.registry.set_status(state.fid, "active")
    click.echo(f"resumed {state.url}")


@feeds.command("discover")
@click.argument("site_url")
def feeds_discover(site_url: str) -> None:
    """Find a site's feeds; prints YAML ready to paste under `feeds:` in config/feeds.yaml."""
    import yaml

    from tasks.runtime import Runtime
    from worker.discover import discover_feeds

    rt = Runtime(_settings())  # no Redis needed: only its HTTP client and limits
    found = discover_feeds(rt.http, site_url, rt.limits(rt.settings.max_feed_bytes))
    if not found:
        raise click.ClickException(f"no feeds found on {site_url}")
    for f in found:
        click.echo(f"# {f.entries} entries")
        click.echo(yaml.safe_dump([{"url": f.url, "section": f.title}], allow_unicode=True, sort_keys=False).rstrip())


@main.command()
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Give up after this many seconds.")
def demo(timeout: float) -> None:
    """Ingest a bundled Vietnamese news site served on 127.0.0.1, print the articles, and stop."""
    from demo.run import run_demo

    sys.exit(run_demo(timeout=timeout))


if __name__ == "__main__":
    main()
