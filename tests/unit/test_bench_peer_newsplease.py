"""The news-please peer's wrapper (bench/peers/news_please.py), with the fake scripts and fake venv python of
test_bench_peers.py: no network, no venv creation, no news-please."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest
from test_bench_peers import RESULT, fake_python, script  # tests/unit is on sys.path (it has no __init__.py)

from bench.peers import news_please as peer
from bench.peers import newspaper4k

FEEDS = ["http://127.0.0.1:1/a.rss", "http://127.0.0.1:1/b.rss"]
needs_sh = pytest.mark.skipif(sys.platform == "win32", reason="the fake python is a shell script")


def test_run_passes_threads_and_feeds_and_returns_the_result_with_the_tree_peak(tmp_path: Path) -> None:
    fake = script(tmp_path, "print('news-please logs here too')\ntime.sleep(0.3)\n"
                            f"print(json.dumps({{**{RESULT!r}, 'argv': sys.argv[1:]}}))\n\n")
    got = peer.run_newsplease(Path(sys.executable), FEEDS, threads=3, timeout=30, script=fake)
    assert got.pop("argv") == ["--threads", "3", *FEEDS]
    assert got.pop("tree_peak_rss_mb") > 1  # a live python process was sampled
    assert got == RESULT


def test_a_failing_peer_raises_the_shared_peer_error_with_its_stderr(tmp_path: Path) -> None:
    fake = script(tmp_path, "sys.stderr.write('ModuleNotFoundError: no newsplease here')\nsys.exit(3)\n")
    with pytest.raises(newspaper4k.PeerError, match=r"^news-please exited with 3: ModuleNotFoundError: no newsplease"):
        peer.run_newsplease(Path(sys.executable), FEEDS, timeout=30, script=fake)


def test_a_peer_past_its_timeout_is_killed_and_raises(tmp_path: Path) -> None:
    fake = script(tmp_path, f"open({str(tmp_path / 'pid')!r}, 'w').write(str(__import__('os').getpid()))\n"
                            "time.sleep(60)\n")
    with pytest.raises(peer.PeerError, match=r"^news-please: no result after 0.5 s"):
        peer.run_newsplease(Path(sys.executable), FEEDS, timeout=0.5, script=fake)
    assert not psutil.pid_exists(int((tmp_path / "pid").read_text()))


def test_output_without_a_result_raises_naming_news_please(tmp_path: Path) -> None:
    fake = script(tmp_path, "print('Traceback (most recent call last):')\n")
    with pytest.raises(peer.PeerError, match=r"^news-please: last line is not JSON: 'Traceback"):
        peer.run_newsplease(Path(sys.executable), FEEDS, timeout=30, script=fake)


@needs_sh
def test_ensure_venv_keeps_a_venv_that_has_the_measured_version(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "venv", peer.VERSION)
    assert peer.ensure_venv(tmp_path / "venv") == python
    calls = (tmp_path / "venv" / "calls").read_text().splitlines()
    assert len(calls) == 1 and "'news-please'" in calls[0] and "pip" not in calls[0]  # a probe, no install


@needs_sh
def test_ensure_venv_installs_the_pinned_requirements_over_another_version(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "venv", newspaper4k.VERSION)  # what a probe of the wrong package would find
    assert peer.ensure_venv(tmp_path / "venv") == python
    install = (tmp_path / "venv" / "calls").read_text().splitlines()[-1]
    assert install.startswith("-m pip install") and install.endswith(" ".join(peer.REQUIREMENTS))
    assert f"news-please=={peer.VERSION}" in install.split()


def test_ensure_venv_makes_a_missing_venv_then_installs_into_it(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(newspaper4k.subprocess, "run", lambda cmd, **_: calls.append(cmd))
    python = peer.ensure_venv(tmp_path / "venv")
    assert python == newspaper4k.venv_python(tmp_path / "venv")
    assert calls[0] == [sys.executable, "-m", "venv", str(tmp_path / "venv")]
    assert calls[1][:4] == [str(python), "-m", "pip", "install"] and calls[1][-len(peer.REQUIREMENTS):] == list(
        peer.REQUIREMENTS)
    assert len(calls) == 2


def test_the_venv_is_its_own_at_the_repository_root() -> None:
    assert peer.DEFAULT_VENV == Path(__file__).resolve().parents[2] / ".venv-peer-newsplease"
    assert peer.DEFAULT_VENV != newspaper4k.DEFAULT_VENV  # news-please brings its own newspaper4k range


def test_summary_names_news_please_and_how_it_fetched() -> None:
    line = peer.summary(RESULT | {"version": "9.9", "threads": 40, "processes": 2, "empty": 0, "tree_peak_rss_mb": 90.0,
                                  "blocked": {"example.com": 2}}, 200, 4)
    assert line.startswith("news-please 9.9 from_urls, 40 download threads, 2 parse processes, latency 200 ms: 6.0/s "
                           "(3/4 parsed with text, 0 empty, 1 failed")
    assert line.endswith("BLOCKED non-loopback {'example.com': 2}")
