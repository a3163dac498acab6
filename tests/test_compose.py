"""docker/compose.yaml, offline (no Docker here): valid against the Compose specification
(check-jsonschema's vendored copy), every file it mounts exists, the Prometheus and Grafana
configuration it mounts agrees with it (paths inside the containers, scrape targets,
the API's metrics allow-list), and no password or key has a default."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tests.support.prometheus import (
    COMPOSE,
    CONFIG,
    GRAFANA_DIR,
    REPO,
    RULE_FILES,
    binary,
    dashboards,
    load_yaml,
)

REQUIRED = re.compile(r"^\$\{\w+:\?[^}]*\}$")
"""`${NAME:?message}`: compose refuses to start while NAME is unset or empty."""
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"][name]
    return found


def test_compose_file_follows_the_compose_specification() -> None:
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    done = subprocess.run(
        [*command, str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def bind_mounts(spec: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """A service's bind mounts: path in the container -> path on the host (relative to the
    compose file, as compose resolves them). Named volumes are left out."""
    mounts = {}
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        else:
            source, target, *_ = volume.split(":")
            if not source.startswith((".", "/")):
                continue
        mounts[PurePosixPath(target)] = (COMPOSE.parent / source).resolve()
    return mounts


def on_host(spec: dict[str, Any], inside: str) -> Path:
    """Where a path inside the service's container comes from on the host (the deepest
    bind mount holding it); fails when no mount holds it."""
    path = PurePosixPath(inside)
    holders = [target for target in bind_mounts(spec) if path.is_relative_to(target)]
    assert holders, f"{inside} is in no bind mount of the service"
    target = max(holders, key=lambda t: len(t.parts))
    return bind_mounts(spec)[target] / path.relative_to(target)


def test_every_mounted_file_exists_and_named_volumes_are_declared(
    compose: dict[str, Any],
) -> None:
    declared = set(compose.get("volumes", {}))
    for name, spec in compose["services"].items():
        for target, source in bind_mounts(spec).items():
            # The data directory lives beside the repository, not in it (see README).
            if target == PurePosixPath("/data"):
                continue
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"
            assert source.is_relative_to(REPO), f"{name}: {source} is outside the repository"
        for volume in spec.get("volumes", []):
            named = volume.get("source") if isinstance(volume, dict) else volume.split(":")[0]
            if named and not str(named).startswith((".", "/")):
                assert named in declared, f"{name}: volume {named} is not declared"


def test_prometheus_config_passes_promtool_where_compose_mounts_it(
    compose: dict[str, Any],
) -> None:
    """promtool on the file itself (rule files resolve relative to it), and the same paths
    inside the container: the config file and every rule file it names are mounted."""
    done = subprocess.run(
        [binary("promtool"), "check", "config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    prometheus = service(compose, "prometheus")
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    config_inside = PurePosixPath(flags["--config.file"])
    assert on_host(prometheus, str(config_inside)) == CONFIG.resolve()
    for pattern in load_yaml(CONFIG)["rule_files"]:
        directory = on_host(prometheus, str(config_inside.parent / pattern).rsplit("/", 1)[0])
        mounted = sorted(directory.glob(pattern.rsplit("/", 1)[-1]))
        assert mounted == [path.resolve() for path in RULE_FILES], pattern


def aliases(spec: dict[str, Any], network: str) -> set[str]:
    settings = spec.get("networks", {}).get(network) or {}
    return set(settings.get("aliases", []))


def test_scrape_targets_are_the_services_on_the_metrics_network(
    compose: dict[str, Any],
) -> None:
    """Prometheus reaches each target by an alias of the metrics network, and the API lets
    exactly Prometheus's address there read /metrics."""
    config = load_yaml(CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_target = jobs["propintel-api"]["static_configs"][0]["targets"][0]
    host, port = api_target.split(":")
    api = service(compose, "api")
    assert host in aliases(api, "metrics")
    assert port == "8000"
    assert "8000:8000" in api["ports"]
    worker = service(compose, "worker")
    dns = jobs["propintel-worker"]["dns_sd_configs"][0]
    assert set(dns["names"]) <= aliases(worker, "metrics")
    assert str(dns["port"]) == worker["environment"]["PROPINTEL_WORKER_METRICS_PORT"]
    assert worker["environment"]["PROPINTEL_WORKER_METRICS_HOST"] == "0.0.0.0"
    prometheus_address = service(compose, "prometheus")["networks"]["metrics"]["ipv4_address"]
    assert api["environment"]["PROPINTEL_METRICS_ALLOW"] == f"{prometheus_address}/32"
    assert compose["networks"]["metrics"]["internal"] is True


def test_grafana_provisioning_is_mounted_where_it_points(compose: dict[str, Any]) -> None:
    grafana = service(compose, "grafana")
    provisioning = on_host(grafana, "/etc/grafana/provisioning/dashboards")
    assert provisioning == (GRAFANA_DIR / "provisioning" / "dashboards").resolve()
    for path in provisioning.glob("*.yml"):
        for provider in load_yaml(path)["providers"]:
            folder = on_host(grafana, provider["options"]["path"])
            assert sorted(folder.glob("*.json")), f"{provider['name']}: no dashboards there"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert on_host(grafana, home).is_file()
    sources = on_host(grafana, "/etc/grafana/provisioning/datasources")
    (datasource,) = [
        source for path in sources.glob("*.yml") for source in load_yaml(path)["datasources"]
    ]
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    for board in dashboards():  # the dashboards' data source variable defaults to it
        (variable,) = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
        assert variable["current"]["value"] == datasource["uid"], board["title"]


def test_no_password_or_key_has_a_default(compose: dict[str, Any]) -> None:
    """Every secret comes from the environment (`${NAME:?...}`): in prod a stack never
    starts with a password from this file. The database URLs carry the password the same way."""
    anchors = {key: value for key, value in compose.items() if key.startswith("x-")}
    environments = [spec.get("environment", {}) for spec in compose["services"].values()]
    environments += list(anchors.values())
    checked = 0
    for environment in environments:
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                assert REQUIRED.match(str(value)), f"{key} has a default: {value!r}"
                checked += 1
            if key == "DATABASE_URL":
                assert re.search(r":\$\{\w+:\?[^}]*\}@", value), f"{key}: {value!r}"
    assert checked >= 4  # Grafana's and PostgreSQL's passwords, the JWT secret, the admin key


def test_postgresql_is_the_version_the_suite_runs(compose: dict[str, Any]) -> None:
    image = service(compose, "postgres")["image"]
    assert image.split(":")[1].split(".")[0] == "15", image
    command = " ".join(service(compose, "postgres")["command"])
    assert "shared_preload_libraries=pg_stat_statements" in command


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    # The API's is the image's (docker/Dockerfile's HEALTHCHECK).
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    for name, spec in compose["services"].items():
        check = spec.get("healthcheck")
        if check is None and spec.get("build"):
            assert "HEALTHCHECK" in dockerfile, name
            continue
        assert check is not None, f"{name}: no healthcheck"
        assert not check.get("disable"), f"{name}: its healthcheck is disabled"
        assert check["test"], name
