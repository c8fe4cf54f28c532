"""docker-compose.yml: it validates with the compose client, and it keeps its promises."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / "ops" / ".env.example"


def _compose_command() -> list[str] | None:
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _rendered(tmp_path: Path) -> dict:
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    done = subprocess.run([*command, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_config_validates_with_the_example_env(tmp_path):
    config = _rendered(tmp_path)
    assert set(config["services"]) == {"redis", "postgres", "minio", "minio-setup", "api", "worker-gpu",
                                       "worker-cpu", "flower"}
    env = config["services"]["api"]["environment"]
    assert env["ECHODIARY_BROKER_URL"] == "redis://:change-me-redis@redis:6379/0"
    assert env["ECHODIARY_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_compose_refuses_to_start_without_passwords(tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("no docker compose client on this machine")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("MINIO_ROOT_USER=x\n")
    done = subprocess.run([*command, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "REDIS_PASSWORD" in (done.stderr + done.stdout)


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_only_localhost_ports_are_published_and_redis_and_postgres_stay_internal():
    services = _services()
    for name, service in services.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert "ports" not in services["redis"] and "ports" not in services["postgres"]


def test_the_gpu_worker_uses_the_nvidia_runtime_and_a_read_only_models_folder():
    gpu = _services()["worker-gpu"]
    assert gpu["runtime"] == "nvidia"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert any(v.endswith(":/models:ro") for v in gpu["volumes"])
    assert "--queues" in gpu["command"] and gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    assert "--concurrency" in gpu["command"] and gpu["command"][gpu["command"].index("--concurrency") + 1] == "1"


def test_flower_needs_basic_auth_and_the_bucket_is_created():
    services = _services()
    assert "FLOWER_BASIC_AUTH:?" in services["flower"]["environment"]["ECHODIARY_FLOWER_BASIC_AUTH"]
    assert "mc mb --ignore-existing" in services["minio-setup"]["command"][0]
    assert services["api"]["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"
    assert "noeviction" in services["redis"]["command"]


def test_the_example_env_names_only_settings_that_exist():
    from shared.settings import Settings

    fields = {name.upper() for name in Settings.model_fields}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.lstrip("# ").strip()
        if line.startswith("ECHODIARY_") and "=" in line:
            assert line.split("=", 1)[0].removeprefix("ECHODIARY_") in fields, line
