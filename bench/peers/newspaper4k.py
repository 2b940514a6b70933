"""newspaper4k as a peer of the throughput benchmark (issue 9): its own venv, kept apart from the project's, and a
run of `newspaper4k_run.py` there on a site's feeds. Run as a module for a check on a local site:
`.venv/bin/python -m bench.peers.newspaper4k --feeds 4 --articles 25 --latency-ms 50`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil

from demo.newssite import SHARED_DATA, NewsSite, read_pages

VERSION = "0.9.6"  # the version measured; lxml_html_clean comes with it (as the lxml[html_clean] extra)
REQUIREMENTS = (f"newspaper4k=={VERSION}",)
SCRIPT = Path(__file__).with_name("newspaper4k_run.py")
BENCH = Path(__file__).resolve().parents[1]
DEFAULT_VENV = BENCH.parent / ".venv-peers"
RESULT_KEYS = ("articles", "failed", "seconds", "rate", "peak_rss_mb")


class PeerError(RuntimeError):
    """The peer's run failed, timed out, or printed no result."""


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def installed(python: Path, package: str = "newspaper4k", version: str = VERSION) -> bool:
    """Whether `python` exists and has the version of `package` we measure (newspaper4k's by default)."""
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
                           capture_output=True, text=True)
    return probe.returncode == 0 and probe.stdout.strip() == version


def ensure_venv(path: Path = DEFAULT_VENV, *, package: str = "newspaper4k", version: str = VERSION,
                requirements: tuple[str, ...] = REQUIREMENTS) -> Path:
    """The python of a venv at `path` with `package` (newspaper4k by default), made (from PyPI, with
    `requirements`) only if it is missing or has another version."""
    python = venv_python(path)
    if installed(python, package, version):
        return python
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
                   check=True)
    return python


class TreeSampler(threading.Thread):
    """Every `every` seconds, the summed RSS (MB) of a process and all its descendants; keeps the peak."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.proc, self.every, self.peak_mb, self.done = psutil.Process(pid), every, 0.0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            total = 0
            try:
                for proc in [self.proc, *self.proc.children(recursive=True)]:
                    total += proc.memory_info().rss
            except psutil.Error:
                pass  # exited between the listing and the reading: the sample stands on what was read
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self.done.wait(self.every)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak_mb


def parse_result(stdout: str, name: str = "newspaper4k") -> dict[str, Any]:
    """The result of peer `name`: the JSON object on the last non-empty line of its output."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    try:
        result = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError as exc:
        raise PeerError(f"{name}: last line is not JSON: {lines[-1][:200]!r}") from exc
    if not isinstance(result, dict) or any(k not in result for k in RESULT_KEYS):
        raise PeerError(f"{name}: no result with {', '.join(RESULT_KEYS)} in its output: {stdout[-200:]!r}")
    return result


def run_script(name: str, cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run peer `name`'s command `cmd`: its JSON result, plus `tree_peak_rss_mb`, the peak RSS of its process tree
    sampled with psutil (`peak_rss_mb`, its own ru_maxrss, is exact for itself)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        sampler = TreeSampler(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise PeerError(f"{name}: no result after {timeout:g} s") from None
        finally:
            peak = sampler.stop()
    if proc.returncode != 0:
        raise PeerError(f"{name} exited with {proc.returncode}: {err.strip()[-1000:]}")
    return parse_result(out, name) | {"tree_peak_rss_mb": peak}


def run_newspaper4k(python: Path, feed_urls: list[str], threads: int = 10, timeout: float = 600,
                    script: Path = SCRIPT) -> dict[str, Any]:
    """Run the peer on `feed_urls` with `python` (see `ensure_venv`): its JSON result and tree peak (`run_script`)."""
    return run_script("newspaper4k", [str(python), str(script), "--threads", str(threads), *feed_urls], timeout)


def summary(r: dict[str, Any], latency_ms: int, served: int, how: str = "") -> str:
    """One line on a run; `how` names the peer and its way of fetching (newspaper4k's fetch_news by default)."""
    how = how or f"newspaper4k {r.get('version', VERSION)} fetch_news, {r.get('threads', '?')} threads"
    return (f"{how}, latency {latency_ms} ms: {r['rate']:.1f}/s ({r['articles']}/{served} parsed with text, "
            f"{r.get('empty', 0)} empty, {r['failed']} failed in {r['seconds']:.1f} s; "
            f"feeds {r.get('feed_seconds', 0):.1f} s); "
            f"peak RSS {r['peak_rss_mb']:.0f} MB (tree {r['tree_peak_rss_mb']:.0f} MB)"
            + (f"; errors {r['errors']}" if r.get("errors") else "")
            + (f"; BLOCKED non-loopback {r['blocked']}" if r.get("blocked") else ""))


def load_throughput() -> ModuleType:
    """bench/throughput.py (not a package), for its extractor filter."""
    spec = importlib.util.spec_from_file_location("bench_throughput", BENCH / "throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def site_parser(peer: str, venv: Path) -> argparse.ArgumentParser:
    """The options of a peer's check on a local site (`check_on_local_site`)."""
    ap = argparse.ArgumentParser(description=f"{peer} on the throughput benchmark's local site")
    ap.add_argument("--feeds", type=int, default=4)
    ap.add_argument("--articles", type=int, default=25, help="per feed")
    ap.add_argument("--latency-ms", default="50", help="comma-separated, one site and run each")
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--venv", type=Path, default=venv)
    ap.add_argument("--data", type=Path, default=SHARED_DATA)
    return ap


def check_on_local_site(args: argparse.Namespace, run: Callable[[list[str]], dict[str, Any]],
                        describe: Callable[[dict[str, Any], int, int], str] = summary) -> int:
    """`run` (feed URLs -> result) on a local site per latency of `args` (`site_parser`); prints `describe`'s lines."""
    bench = load_throughput()
    pages = read_pages(args.data)
    with multiprocessing.get_context("fork").Pool() as pool:  # fork: the children inherit bench_throughput
        ok = pool.map(bench._extract, [(page, f"http://127.0.0.1/p{i}.html") for i, page in enumerate(pages)])
    if not (usable := [page for page, good in zip(pages, ok, strict=True) if good]):
        sys.exit(f"no article pages under {args.data}: see --data")
    served = args.feeds * args.articles
    print(f"{len(usable)} of {len(pages)} pages are articles; {args.feeds} feeds x {args.articles}", flush=True)
    for latency in (int(x) for x in args.latency_ms.split(",")):
        site = NewsSite(latency / 1000, args.feeds)
        try:
            for i in range(served):  # as bench/throughput.py's run_once: pages reused, each under a new URL
                site.add_article(i // args.articles, f"/s{i // args.articles:02d}/a{i:04d}.html", usable[i % len(usable)])
            result = run(site.feed_urls)
        finally:
            site.stop()
        print(describe(result, latency, served), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = site_parser("newspaper4k", DEFAULT_VENV).parse_args(argv)
    python = ensure_venv(args.venv)
    return check_on_local_site(args, lambda feeds: run_newspaper4k(python, feeds, args.threads))


if __name__ == "__main__":
    sys.exit(main())
