"""The production stack's files: docker-compose.yml validated offline (no Docker engine here)."""
import os
import runpy
import subprocess
from pathlib import Path

import compose
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
PRODUCTION_ENV = {"POSTGRES_PASSWORD": "pw", "DJANGO_SECRET_KEY": "k" * 60}


def compose_config(path, env):
    # The package's wrapper script always exits 0; the binary itself reports invalid files.
    return subprocess.run(
        [str(COMPOSE_BINARY), "-f", str(path), "config", "-q"],
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env},
        capture_output=True, text=True, timeout=60,
    )


def test_docker_compose_file_is_valid_compose():
    result = compose_config(ROOT / "docker-compose.yml", PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr


def test_the_validator_rejects_an_invalid_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  web:\n    image: x\n    ports: 8000\n    healthcheck: yes\n")
    assert compose_config(broken, {}).returncode != 0


def test_compose_refuses_to_start_without_secrets():
    result = compose_config(ROOT / "docker-compose.yml", {})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr or "POSTGRES_PASSWORD" in result.stderr


@pytest.fixture(scope="module")
def services():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_stack_has_every_production_service_with_a_health_check(services):
    assert set(services) == {"db", "redis", "web", "worker", "beat"}
    assert all("healthcheck" in service for service in services.values())


def test_web_migrates_then_serves_under_gunicorn(services):
    command = services["web"]["command"]
    assert command.index("migrate") < command.index("gunicorn")
    assert services["web"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_worker_and_beat_run_celery_against_redis(services):
    assert services["worker"]["command"][:4] == ["celery", "-A", "registry", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "registry", "beat"]
    assert services["worker"]["environment"]["CELERY_BROKER_URL"].startswith("redis://redis:")


def test_the_web_server_takes_its_settings_from_gunicorn_conf(services, monkeypatch):
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "gunicorn --config gunicorn.conf.py registry.wsgi:application" in services["web"]["command"]
    assert '"gunicorn", "--config", "gunicorn.conf.py", "registry.wsgi:application"' in dockerfile
    assert "--workers" not in services["web"]["command"] + dockerfile

    conf = ROOT / "gunicorn.conf.py"
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert runpy.run_path(str(conf))["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    assert runpy.run_path(str(conf))["workers"] == 4
