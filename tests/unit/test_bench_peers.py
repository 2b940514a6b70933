"""The newspaper4k peer's wrapper (bench/peers/newspaper4k.py), with fake scripts and a fake venv python: no
network, no venv creation, no newspaper4k."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.peers import newspaper4k as peer

RESULT = {"articles": 3, "failed": 1, "seconds": 0.5, "rate": 6.0, "peak_rss_mb": 40.0}


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake_peer.py"
    path.write_text("import json, sys, time\n" + body)
    return path


def test_run_passes_threads_and_feeds_and_returns_the_last_json_line_with_the_tree_peak(tmp_path: Path) -> None:
    fake = script(tmp_path, "time.sleep(0.3)\nprint('a warning on stdout')\n"
                            f"print(json.dumps({{**{RESULT!r}, 'argv': sys.argv[1:]}}))\n")
    got = peer.run_newspaper4k(Path(sys.executable), ["http://127.0.0.1:1/a.rss", "http://127.0.0.1:1/b.rss"],
                               threads=7, timeout=30, script=fake)
    assert got["argv"] == ["--threads", "7", "http://127.0.0.1:1/a.rss", "http://127.0.0.1:1/b.rss"]
    assert {k: got[k] for k in RESULT} == RESULT
    assert got["tree_peak_rss_mb"] > 1  # a live python process was sampled


def test_a_failing_peer_raises_with_its_stderr(tmp_path: Path) -> None:
    fake = script(tmp_path, "sys.stderr.write('ImportError: no newspaper here')\nsys.exit(3)\n")
    with pytest.raises(peer.PeerError, match=r"exited with 3: ImportError: no newspaper here"):
        peer.run_newspaper4k(Path(sys.executable), ["http://127.0.0.1:1/a.rss"], timeout=30, script=fake)


def test_a_peer_past_its_timeout_is_killed_and_raises(tmp_path: Path) -> None:
    fake = script(tmp_path, "time.sleep(60)\n")
    with pytest.raises(peer.PeerError, match="no result after 0.5 s"):
        peer.run_newspaper4k(Path(sys.executable), ["http://127.0.0.1:1/a.rss"], timeout=0.5, script=fake)


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        pytest.param("", "no result", id="no-output"),
        pytest.param('{"articles": 1}\nTraceback (most recent call last):\n', "not JSON", id="last-line-not-json"),
        pytest.param(json.dumps({k: v for k, v in RESULT.items() if k != "rate"}), "no result", id="key-missing"),
        pytest.param("[1, 2]", "no result", id="not-an-object"),
    ],
)
def test_parse_result_rejects_output_without_a_result(stdout: str, message: str) -> None:
    with pytest.raises(peer.PeerError, match=message):
        peer.parse_result(stdout)


def test_parse_result_ignores_blank_lines_after_the_result() -> None:
    assert peer.parse_result("noise\n" + json.dumps(RESULT) + "\n\n") == RESULT


def fake_python(venv: Path, version: str) -> Path:
    """A venv `python` that logs each call and answers every command with `version`."""
    python = peer.venv_python(venv)
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "$@" >> "{venv}/calls"\necho {version}\n')
    python.chmod(0o755)
    return python


@pytest.mark.skipif(sys.platform == "win32", reason="the fake python is a shell script")
def test_ensure_venv_keeps_a_venv_that_has_the_measured_version(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "venv", peer.VERSION)
    assert peer.ensure_venv(tmp_path / "venv") == python
    calls = (tmp_path / "venv" / "calls").read_text().splitlines()
    assert len(calls) == 1 and "newspaper4k" in calls[0] and "pip" not in calls[0]  # a probe, no install


@pytest.mark.skipif(sys.platform == "win32", reason="the fake python is a shell script")
def test_ensure_venv_installs_the_pinned_version_over_another(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "venv", "0.0.1")
    assert peer.ensure_venv(tmp_path / "venv") == python
    install = (tmp_path / "venv" / "calls").read_text().splitlines()[-1]
    assert install.startswith("-m pip install") and install.endswith(f"newspaper4k=={peer.VERSION}")
