"""docker-compose.yml stays valid without Docker: services, images or builds, the files it
mounts, and the environment the app reads; Docker itself cannot run on our CI machines."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from authz_server.config import Settings
from ledger_writer.config import LedgerSettings

REPO = Path(__file__).resolve().parents[2]


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_service_has_an_image_or_a_build() -> None:
    services = compose()["services"]
    assert {"redis", "postgres", "authz-server", "ledger-writer", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


def test_mounted_files_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
    assert (REPO / "Dockerfile").exists()


def test_redis_persists_with_aof() -> None:
    command = compose()["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"


def test_app_environment_is_valid_settings() -> None:
    env = {k: str(v) for k, v in compose()["services"]["authz-server"]["environment"].items()}
    env["AUTHZ_ADMIN_TOKEN"] = "x" * 16  # compose takes it from the caller's environment
    settings = Settings.from_env(env)
    assert settings.listen_addr == "0.0.0.0:50051" and settings.metrics_addr == "0.0.0.0"


def test_prometheus_scrapes_the_metrics_port() -> None:
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    port = compose()["services"]["authz-server"]["environment"]["AUTHZ_METRICS_PORT"]
    assert any(re.fullmatch(rf"authz-server:{port}", target) for target in targets)


def test_prometheus_scrapes_the_ledger_writer() -> None:
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    targets = [t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]]
    port = compose()["services"]["ledger-writer"]["environment"]["LEDGER_METRICS_PORT"]
    assert f"ledger-writer:{port}" in targets
    env = {k: str(v) for k, v in compose()["services"]["ledger-writer"]["environment"].items()}
    assert LedgerSettings.from_env(env).metrics_addr == "0.0.0.0"


def exported_metric_names() -> set[str]:
    import authz_server.metrics as authz_metrics
    import ledger_writer.metrics as ledger_metrics

    names = set()
    for module in (authz_metrics, ledger_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                names.update(sample_name for metric in value.describe() for sample_name in _sample_names(metric))
    return names


def _sample_names(metric) -> list[str]:  # type: ignore[no-untyped-def]
    base = metric.name
    return [base, f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum"]


def test_grafana_dashboard_queries_only_metrics_we_export() -> None:
    dashboard = json.loads((REPO / "deploy" / "grafana" / "dashboards" / "zentra.json").read_text())
    exported = exported_metric_names()
    titles = []
    for panel in dashboard["panels"]:
        titles.append(panel["title"])
        for target in panel["targets"]:
            for name in re.findall(r"zentra_[a-z_]+", target["expr"]):
                assert name in exported, f"panel {panel['title']!r} queries {name}, which nothing exports"
    required = ["outcome", "latency", "Decline reasons", "Fail-closed", "Redis", "Ledger lag", "Dead letters"]
    for word in required:
        assert any(word in title for title in titles), f"the dashboard shows {word}"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    volumes = compose()["services"]["grafana"]["volumes"]
    provider = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/zentra.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert any(v.endswith(f":{path}:ro") and v.startswith("./deploy/grafana/dashboards") for v in volumes)
    source = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"


def compose_cli() -> list[str] | None:
    """A Compose implementation that can parse the file without a Docker daemon, if this
    machine has one: the `docker compose` plugin, or the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker is not None and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone is not None else None


def test_compose_itself_accepts_the_file() -> None:
    """Where Compose is installed (it needs no daemon to parse), it validates the file against
    its schema and resolves every interpolation; without the admin token it refuses to."""
    cli = compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    env = {k: v for k, v in os.environ.items() if k != "AUTHZ_ADMIN_TOKEN"}

    def run(*args: str, **token: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], cwd=REPO, env={**env, **token}, capture_output=True, text=True)

    checked = run("config", "-q", AUTHZ_ADMIN_TOKEN="x" * 16)
    assert checked.returncode == 0, checked.stderr
    services = run("config", "--services", AUTHZ_ADMIN_TOKEN="x" * 16)
    assert set(services.stdout.split()) == set(compose()["services"]), services.stderr
    refused = run("config", "-q")
    assert refused.returncode != 0 and "AUTHZ_ADMIN_TOKEN" in refused.stdout + refused.stderr
