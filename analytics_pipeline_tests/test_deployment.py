"""Deployment files that cannot run here (no Docker engine) are still validated by the tools that read them."""

import os
import shutil
import subprocess
import sys

import yaml

from analytics_pipeline import paths


def test_docker_compose_config_is_valid_and_wires_the_stack():
    assert shutil.which("docker-compose"), "docker-compose is required (.ci/run installs Debian's package)"
    env = {**os.environ, "POSTGRES_PASSWORD": "not-a-real-secret"}
    output = subprocess.run(
        ["docker-compose", "-f", str(paths.PROJECT_ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = yaml.safe_load(output)
    assert set(config["services"]) == {"postgres", "user_code", "webserver", "daemon"}
    for name in ("user_code", "webserver", "daemon"):
        service = config["services"][name]
        assert service["environment"]["ANALYTICS_DATABASE_URL"].endswith("@postgres:5432/analytics")
        assert any(str(v).endswith(":/opt/dagster/data") or "/opt/dagster/data" in str(v) for v in service["volumes"])
    assert "workspace.docker.yaml" in config["services"]["webserver"]["command"]


def test_docker_compose_refuses_to_start_without_a_password():
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        ["docker-compose", "-f", str(paths.PROJECT_ROOT / "docker-compose.yml"), "config"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_dagster_definitions_validate_passes(warehouse_url):
    bin_dir = os.path.dirname(sys.executable)
    result = subprocess.run(
        [os.path.join(bin_dir, "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=paths.PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful" in result.stderr + result.stdout
