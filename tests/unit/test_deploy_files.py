"""Static checks of the deploy files (no Docker engine): docker-compose.yml against the Compose specification;
the compose file, Dockerfile and config/example.env against the code they start."""

from __future__ import annotations

import importlib
import json
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from celery import Celery
from compose_spec import PyOptions, parse_duration
from dockerfile_parse import DockerfileParser

from config import Settings, load_settings
from tasks.stack import SCHEDULER_CMD, WORKER_CMD

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = "config/example.env"
APP_SERVICES = ("scheduler", "worker", "flower")
# example.env values that differ from the code's defaults on purpose (see the file's comments).
NOT_DEFAULTS = {"redis_url", "feeds_file", "extract_processes"}


def parse_compose(text: str) -> dict[str, Any]:
    """Parse and validate with compose_spec (bindings of the Rust `compose_spec` crate): unknown keys, wrong
    types and bad values raise ValueError; YAML merge keys are resolved as `docker compose` resolves them."""
    compose = PyOptions(apply_merge=True).from_yaml(text)
    compose.validate()
    return compose.to_dict()


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and key == key.strip(), f"not KEY=value: {line!r}"
            env[key] = value
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return parse_compose((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_file() -> dict[str, str]:
    return read_env_file(ROOT / ENV_FILE)


@pytest.fixture(scope="module")
def dockerfile() -> list[dict[str, Any]]:
    return DockerfileParser(str(ROOT / "Dockerfile")).structure


def final(structure: list[dict[str, Any]], instruction: str) -> str:
    """The value of the last `instruction` in the final stage, the one the image runs."""
    last_from = max(i for i, ins in enumerate(structure) if ins["instruction"] == "FROM")
    values = [ins["value"] for ins in structure[last_from:] if ins["instruction"] == instruction]
    assert values, f"no {instruction} in the final stage"
    return values[-1]


BROKEN = {
    "misspelt key": "services:\n  worker:\n    image: x\n    comand: [worker]\n",
    "bad condition": "services:\n  w:\n    image: x\n    depends_on:\n      r: {condition: service_up}\n  r:\n    image: y\n",
    "bad duration": "services:\n  worker:\n    image: x\n    stop_grace_period: a minute\n",
    "undefined network": "services:\n  worker:\n    image: x\n    networks: [nowhere]\n",
}


@pytest.mark.parametrize("text", BROKEN.values(), ids=BROKEN.keys())
def test_validator_rejects_a_broken_compose_file(text: str) -> None:
    with pytest.raises(ValueError):
        parse_compose(text)


def test_one_image_for_the_app_services(compose: dict[str, Any]) -> None:
    app = [compose["services"][name] for name in APP_SERVICES]
    assert {s["build"] for s in app} == {"."} and len({s["image"] for s in app}) == 1
    assert all(s["env_file"] in (ENV_FILE, [ENV_FILE]) for s in app)


def test_one_scheduler_and_scalable_workers_run_what_ingest_run_runs(
    compose: dict[str, Any], dockerfile: list[dict[str, Any]]
) -> None:
    scheduler, worker = compose["services"]["scheduler"], compose["services"]["worker"]
    assert json.loads(final(dockerfile, "ENTRYPOINT")) == ["ingest"]
    assert "entrypoint" not in scheduler and "entrypoint" not in worker
    assert (scheduler["command"], worker["command"]) == (SCHEDULER_CMD, WORKER_CMD)
    assert scheduler.get("deploy", {}).get("replicas", 1) <= 1
    assert not {"container_name", "ports"} & set(worker)  # so `--scale worker=N` works


def test_flower_runs_the_celery_app_with_state_and_auth(compose: dict[str, Any], env_file: dict[str, str]) -> None:
    flower = compose["services"]["flower"]
    assert flower["entrypoint"] == ["celery"] and entry_points(group="console_scripts", name="celery")
    command = flower["command"]
    module, attr = command[command.index("--app") + 1].split(":")
    assert isinstance(getattr(importlib.import_module(module), attr), Celery)
    assert "flower" in command and "--port=5555" in command and "--persistent=True" in command
    db_dir = Path(next(a for a in command if a.startswith("--db=")).removeprefix("--db=")).parent
    assert any(v.split(":")[0] in compose["volumes"] and v.endswith(f":{db_dir}") for v in flower["volumes"])
    # Flower applies FLOWER_<OPTION> variables itself, so the env file's FLOWER_BASIC_AUTH must name an option.
    assert "basic_auth" in importlib.import_module("flower.options").options
    assert ":" in env_file["FLOWER_BASIC_AUTH"]


def test_redis_is_persistent_and_health_checked(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_app_services_reach_healthy_redis_and_shut_down_warm(compose: dict[str, Any], env_file: dict[str, str]) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        url = urlsplit(load_settings({**env_file, **service.get("environment", {})}).redis_url)  # environment wins
        assert (url.hostname, url.port) == ("redis", 6379), name
        assert service["stop_signal"] == "SIGTERM" and parse_duration(service["stop_grace_period"]) >= 30, name


def test_example_env_documents_every_setting_with_its_default(env_file: dict[str, str]) -> None:
    documented = {k.removeprefix("INGEST_").lower() for k in env_file if k.startswith("INGEST_")}
    assert documented == set(Settings.model_fields)
    assert {"REDIS_URL", "FLOWER_BASIC_AUTH"} <= set(env_file)
    settings, defaults = load_settings(env_file), load_settings({})
    changed = {name for name in Settings.model_fields if getattr(settings, name) != getattr(defaults, name)}
    assert changed <= NOT_DEFAULTS
    assert (ROOT / settings.feeds_file).is_file()  # relative to the repo root, and to /app in the image


def test_dockerfile_is_multi_stage_non_root_and_health_checked(dockerfile: list[dict[str, Any]]) -> None:
    assert sum(ins["instruction"] == "FROM" for ins in dockerfile) >= 2
    assert final(dockerfile, "USER").split(":")[0] not in ("root", "0")
    assert "CMD" in final(dockerfile, "HEALTHCHECK").split()  # not HEALTHCHECK NONE
    copied = " ".join(ins["value"] for ins in dockerfile if ins["instruction"] == "COPY")
    assert "config/" in copied and "tests/data/site" in copied


def test_entrypoint_is_the_projects_console_script(dockerfile: list[dict[str, Any]]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    [name] = json.loads(final(dockerfile, "ENTRYPOINT"))
    module, attr = scripts[name].split(":")
    assert callable(getattr(importlib.import_module(module), attr))
    assert json.loads(final(dockerfile, "CMD")) == WORKER_CMD


def test_compose_healthchecks_use_ingest_health() -> None:
    import yaml as _yaml

    from tasks.cli import health

    services = _yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    choices = next(p for p in health.params if p.name == "component").type.choices  # type: ignore[attr-defined]
    for name in ("scheduler", "worker"):
        test = services[name]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "ingest", "health"] and test[test.index("--component") + 1] in choices


def test_lock_file_pins_every_runtime_dependency_within_its_range() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pinned = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is missing from requirements.lock (run `make lock`)"
        assert req.specifier.contains(pinned[name], prereleases=True), f"{req.name}=={pinned[name]} not in {req.specifier}"


def test_dockerfile_copies_only_paths_that_exist() -> None:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    for instr in parser.structure:
        if instr["instruction"] == "COPY" and "--from" not in instr["value"]:
            sources = instr["value"].split()[:-1]
            for src in sources:
                assert (ROOT / src.rstrip("/")).exists(), f"Dockerfile copies missing {src}"
