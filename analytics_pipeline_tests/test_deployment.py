"""Deployment files that cannot run here (no Docker engine, no Kubernetes, no helm) are still validated by the tools
that read them, and checked against each other: the compose file by docker-compose, the compose instance by Dagster's
own config validation and dagster-docker's run launcher settings, the Dockerfile by
BuildKit's parser, the Helm values against the chart's documented keys, and the README's commands against the files.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import dockerfile
import yaml

from analytics_pipeline import partitions, paths
from analytics_pipeline.analysis import embedding
from analytics_pipeline.ingestion import settings as ingestion_settings
from analytics_pipeline.resources import (
    API_SOURCE_PREFIX,
    DATABASE_SOURCE_PREFIX,
    S3_VARIABLES,
    UPLOADS_URL_ENV,
    DatabaseSource,
    RestApiSource,
)
from analytics_pipeline.warehouse import server

ROOT = paths.PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKER_INSTANCE = ROOT / "deploy" / "dagster.docker.yaml"
DOCKER_WORKSPACE = ROOT / "deploy" / "workspace.docker.yaml"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"
DATA_PVC = ROOT / "deploy" / "helm" / "data-pvc.yaml"
HELM_BUCKET_VALUES = ROOT / "deploy" / "helm" / "values-bucket.yaml"
PASSWORD = "not-a-real-secret"
DAGSTER_SERVICES = ("user_code", "webserver", "daemon")
DOCKER_SOCKET = "/var/run/docker.sock"

# Every variable the project's code reads: compose must hand each one to the code server and to every run.
PROJECT_VARIABLES = {
    server.DATABASE_URL_ENV,
    paths.DATA_DIR_ENV,
    ingestion_settings.MAPPINGS_ENV,
    partitions.START_DATE_ENV,
    "ANALYTICS_MAX_RUNS_PER_TICK",
    "ANALYTICS_FILES_PER_RUN",
    "ANALYTICS_HOLIDAY_COUNTRY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    embedding.EMBEDDING_MODEL_ENV,
    UPLOADS_URL_ENV,
    *S3_VARIABLES,
    *(DATABASE_SOURCE_PREFIX + name.upper() for name in DatabaseSource.model_fields),
    *(API_SOURCE_PREFIX + name.upper() for name in RestApiSource.model_fields),
}


def compose_config(**environment: str) -> dict:
    """`docker-compose config` in a clean environment: only PATH, the required password and what the test adds."""
    assert shutil.which("docker-compose"), "docker-compose is required (.ci/run installs Debian's package)"
    env = {"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": PASSWORD, **environment}
    output = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"], env=env, capture_output=True, text=True, check=True
    ).stdout
    return yaml.safe_load(output)


def published_ports(service: dict) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each published port, whichever syntax compose printed: Debian's
    docker-compose 1.x prints "127.0.0.1:3000:3000/tcp", Compose v2 the long form with host_ip."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            ports.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:
            *host, published, target = str(port).split("/")[0].split(":")
            ports.append((":".join(host), int(published), int(target)))
    return ports


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def option(command: list[str], flag: str) -> str:
    return str(command[command.index(flag) + 1])


def mount_source(service: dict, target: str) -> str:
    """The source of the service's volume mounted at ``target`` (compose prints short syntax: source:target:mode)."""
    sources = [str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1] == target]
    assert len(sources) == 1, f"expected one mount at {target}: {service.get('volumes')}"
    return sources[0]


def dockerfile_commands() -> list:
    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def dockerfile_env() -> dict[str, str]:
    env = {}
    for command in dockerfile_commands():
        if command.cmd == "ENV":
            env.update(zip(command.value[::2], command.value[1::2], strict=True))
    return env


def readme_deployment() -> str:
    text = (ROOT / "README.md").read_text()
    assert "\n## Deployment\n" in text
    return text.split("\n## Deployment\n", 1)[1]


def readme_commands() -> list[list[str]]:
    """Every shell command in the Deployment section's bash blocks, joined across line continuations, as argv."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", readme_deployment(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def readme_command(*prefix: str) -> list[list[str]]:
    return [words for words in readme_commands() if words[: len(prefix)] == list(prefix)]


def pinned_versions() -> dict[str, str]:
    """The ``name==version`` pins of the Dockerfile's pip install."""
    runs = [" ".join(c.value) for c in dockerfile_commands() if c.cmd == "RUN" and "pip install" in " ".join(c.value)]
    assert len(runs) == 1, runs
    return dict(re.findall(r"([A-Za-z0-9_.-]+)==([0-9][0-9A-Za-z.]*)", runs[0]))


# docker-compose ---------------------------------------------------------------------------------------------------


def test_docker_compose_config_is_valid_and_wires_the_stack():
    config = compose_config()
    services = config["services"]
    # The stack; MinIO and the job creating its bucket start only with `--profile bucket`.
    assert {name for name, service in services.items() if not service.get("profiles")} == {
        "postgres", "user_code", "webserver", "daemon"
    }
    assert {name: service["profiles"] for name, service in services.items() if service.get("profiles")} == {
        "minio": ["bucket"], "minio_bucket": ["bucket"]
    }
    bucket_env = compose_config(ANALYTICS_S3_ACCESS_KEY_ID="minio-user", ANALYTICS_S3_SECRET_ACCESS_KEY="minio-pass")
    assert bucket_env["services"]["minio"]["environment"] == {
        "MINIO_ROOT_USER": "minio-user", "MINIO_ROOT_PASSWORD": "minio-pass"
    }
    assert bucket_env["services"]["user_code"]["environment"]["ANALYTICS_S3_SECRET_ACCESS_KEY"] == "minio-pass"

    postgres_env = services["postgres"]["environment"]
    expected_url = (
        f"postgresql+psycopg2://{postgres_env['POSTGRES_USER']}:{PASSWORD}@postgres:5432/{postgres_env['POSTGRES_DB']}"
    )
    networks = {name: set(service["networks"]) for name, service in services.items()}
    assert len(set(map(frozenset, networks.values()))) == 1, networks
    for name in DAGSTER_SERVICES:
        service = services[name]
        assert service["environment"][server.DATABASE_URL_ENV] == expected_url
        assert service["image"] == services["user_code"]["image"]
        assert service["build"]["context"] == str(ROOT)

    # The webserver and the daemon reach the code server through the workspace file the image carries.
    user_code = services["user_code"]
    grpc_port = option(user_code["command"], "-p")
    assert user_code["command"][:3] == ["dagster", "code-server", "start"]
    assert option(user_code["command"], "-m") == pyproject()["tool"]["dagster"]["module_name"]
    assert user_code["healthcheck"]["test"][-2:] == ["-p", grpc_port]
    for name in ("webserver", "daemon"):
        assert option(services[name]["command"], "-w") == DOCKER_WORKSPACE.name
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_healthy"
    [(_, _, ui_port)] = published_ports(services["webserver"])
    assert ui_port == int(option(services["webserver"]["command"], "-p"))

    # Dagster's own validation of a workspace file (what `dagster dev -w` runs); it has no public entry point.
    from dagster._core.workspace.config_schema import ensure_workspace_config

    workspace = ensure_workspace_config(load_yaml(DOCKER_WORKSPACE), str(DOCKER_WORKSPACE))
    [location] = workspace["load_from"]
    assert location["grpc_server"]["host"] == "user_code"
    assert str(location["grpc_server"]["port"]) == grpc_port
    assert location["grpc_server"]["location_name"] == pyproject()["tool"]["dagster"]["code_location_name"]


def test_docker_compose_publishes_the_ui_on_loopback_only():
    """Dagster OSS has no login, so the UI is reachable from this host only unless a proxy in front of it asks for
    one (README, Deployment); the host port can change, the address cannot."""
    assert published_ports(compose_config()["services"]["webserver"]) == [("127.0.0.1", 3000, 3000)]
    moved = compose_config(ANALYTICS_UI_PORT="8080")["services"]
    assert published_ports(moved["webserver"]) == [("127.0.0.1", 8080, 3000)]
    for name, service in moved.items():
        assert all(host == "127.0.0.1" for host, _, _ in published_ports(service)), (name, service.get("ports"))


def test_docker_compose_launches_each_run_in_its_own_container():
    config = compose_config()
    services = config["services"]
    launcher = load_yaml(DOCKER_INSTANCE)["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    launcher_config = launcher["config"]

    # The daemon launches runs and the webserver terminates them: both talk to the host's Docker engine.
    for name in ("webserver", "daemon"):
        assert mount_source(services[name], DOCKER_SOCKET) == DOCKER_SOCKET
    assert not any(DOCKER_SOCKET in str(v) for v in services["user_code"].get("volumes", []))

    # Runs join the compose network (by its fixed name), so `postgres` resolves inside them.
    [network_key] = services["daemon"]["networks"]
    assert launcher_config["network"] == config["networks"][network_key]["name"]

    # Runs mount the data volume the code server's sensor watches, at the data directory.
    user_code = services["user_code"]
    data_dir = user_code["environment"][paths.DATA_DIR_ENV]
    volume_key = mount_source(user_code, data_dir)
    assert launcher_config["container_kwargs"]["volumes"] == [f"{config['volumes'][volume_key]['name']}:{data_dir}"]

    # A run's container is started from the code location's image...
    assert user_code["environment"]["DAGSTER_CURRENT_IMAGE"] == user_code["image"]
    assert "image" not in launcher_config
    # ...and gets exactly the variables the code server gets, copied from the daemon, which must have them all.
    server_variables = set(user_code["environment"]) - {"DAGSTER_CURRENT_IMAGE"}
    assert set(launcher_config["env_vars"]) == server_variables
    assert len(launcher_config["env_vars"]) == len(server_variables)
    assert server_variables <= set(services["daemon"]["environment"])
    assert server_variables <= set(services["webserver"]["environment"])
    assert PROJECT_VARIABLES <= server_variables, PROJECT_VARIABLES - server_variables


def test_docker_compose_environment_loads_the_definitions_with_the_code_defaults(tmp_path):
    """With nothing but POSTGRES_PASSWORD set, compose's values (empty strings for unset variables) load the same
    definitions with the same settings as a bare environment does."""
    probe = (
        "from analytics_pipeline import partitions, sensors\n"
        "import analytics_pipeline.definitions as d\n"
        "print(partitions.monthly.start.date(), sensors.MAX_RUNS_PER_TICK, type(d.defs.resources['openai']).__name__,\n"
        "      d.defs.resources['database_source'].url, d.defs.resources['api_source'].base_url)\n"
    )

    def run(env: dict[str, str]) -> str:
        env = {**env, "PATH": os.environ["PATH"], paths.DATA_DIR_ENV: str(tmp_path), "HOME": str(tmp_path)}
        result = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout

    compose_env = {k: str(v) for k, v in compose_config()["services"]["user_code"]["environment"].items()}
    assert run(compose_env) == run({server.DATABASE_URL_ENV: compose_env[server.DATABASE_URL_ENV]})


def test_docker_compose_refuses_to_start_without_a_password():
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_docker_compose_takes_secrets_from_the_environment_only():
    raw = load_yaml(COMPOSE_FILE)
    secret_names = ("PASSWORD", "API_KEY", "TOKEN", "DATABASE_URL", "_URL")
    environments = [raw["x-analytics-env"], *(s.get("environment", {}) for s in raw["services"].values())]
    for environment in environments:
        for name, value in environment.items():
            if any(part in name for part in secret_names) and name != paths.DATA_DIR_ENV:
                assert "${" in str(value), f"{name} must come from the environment, not the file: {value!r}"
    assert "${POSTGRES_PASSWORD:?" in raw["x-analytics-env"][server.DATABASE_URL_ENV]

    unset = compose_config()["services"]
    given = compose_config(OPENAI_API_KEY="sk-from-env", ANALYTICS_SOURCE_API_TOKEN="token-from-env")["services"]
    for name in DAGSTER_SERVICES:
        assert unset[name]["environment"]["OPENAI_API_KEY"] == ""
        assert given[name]["environment"]["OPENAI_API_KEY"] == "sk-from-env"
        assert given[name]["environment"]["ANALYTICS_SOURCE_API_TOKEN"] == "token-from-env"
    assert unset["postgres"]["environment"]["POSTGRES_PASSWORD"] == PASSWORD


# The compose instance -----------------------------------------------------------------------------------------------


def test_docker_instance_is_the_project_instance_plus_a_docker_run_launcher():
    project = load_yaml(ROOT / "dagster.yaml")
    docker = load_yaml(DOCKER_INSTANCE)
    assert project["run_launcher"]["class"] == "MonitoredRunLauncher"  # the local one; Docker brings its own
    assert {k: v for k, v in docker.items() if k != "run_launcher"} == {
        k: v for k, v in project.items() if k != "run_launcher"
    }


def test_docker_instance_is_valid_dagster_config_with_a_docker_run_launcher(warehouse_url, tmp_path, monkeypatch):
    """Dagster loads deploy/dagster.docker.yaml as an instance whose DockerRunLauncher starts each run on the compose
    network with the data volume and every variable the code server has (building and running containers needs a
    Docker engine, which this machine lacks: that part is not exercised here)."""
    from dagster import DagsterInstance, QueuedRunCoordinator

    # Dagster's own loading of an instance's dagster.yaml; it has no public entry point.
    from dagster._core.instance.config import dagster_instance_config
    from dagster_docker import DockerRunLauncher

    config = compose_config()
    services = config["services"]
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DOCKER_INSTANCE, home / "dagster.yaml")

    instance_config, _ = dagster_instance_config(str(home))  # raises DagsterInvalidConfigError on any schema error
    assert instance_config["run_launcher"]["class"] == "DockerRunLauncher"

    # The daemon's environment (configuration, not a stand-in), but with this session's database.
    for name, value in services["daemon"]["environment"].items():
        if name not in (server.DATABASE_URL_ENV, paths.DATA_DIR_ENV):
            monkeypatch.setenv(name, str(value))
    monkeypatch.setenv(server.DATABASE_URL_ENV, warehouse_url)

    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_ref().storage_data.class_name == "WarehouseDagsterStorage"
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        [network_key] = services["daemon"]["networks"]
        data_dir = services["user_code"]["environment"][paths.DATA_DIR_ENV]
        volume_name = config["volumes"][mount_source(services["user_code"], data_dir)]["name"]
        assert launcher.networks == [config["networks"][network_key]["name"]]
        assert launcher.container_kwargs["volumes"] == [f"{volume_name}:{data_dir}"]
        forwarded = set(services["user_code"]["environment"]) - {"DAGSTER_CURRENT_IMAGE"}
        assert set(launcher.env_vars) == forwarded


# The image ----------------------------------------------------------------------------------------------------------

DOCKERFILE_INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG",
    "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def test_dockerfile_installs_the_project_and_exposes_the_ports_in_use():
    commands = dockerfile_commands()
    assert {c.cmd for c in commands} <= DOCKERFILE_INSTRUCTIONS
    assert commands[0].cmd == "FROM" and commands[0].value[0].startswith("python:3.11")
    env = dockerfile_env()
    workdir = [c.value[0] for c in commands if c.cmd == "WORKDIR"][-1]
    copies = {tuple(c.value[:-1]): c.value[-1] for c in commands if c.cmd == "COPY"}

    # The project's sources, then `pip install .` of them, with the run launchers' libraries pinned.
    assert copies[("pyproject.toml", "README.md")] == "./"
    assert copies[("analytics_pipeline",)] == "./analytics_pipeline"
    install = [" ".join(c.value) for c in commands if c.cmd == "RUN" and "pip install" in " ".join(c.value)][0]
    assert " . " in f" {install.split('pip install', 1)[1]} "
    pins = pinned_versions()
    assert pins["dagster-docker"] == pins["dagster-k8s"]
    # Libraries 0.(N+16).x go with dagster 1.N.x: the pins stay in the project's dagster range.
    dagster_range = next(d for d in pyproject()["project"]["dependencies"] if d.startswith("dagster>="))
    core_minor = int(re.search(r">=1\.(\d+)", dagster_range).group(1))
    assert pins["dagster-docker"].startswith(f"0.{core_minor + 16}.")

    # docker-compose's instance and workspace, where the services look for them.
    assert copies[(str(DOCKER_INSTANCE.relative_to(ROOT)),)] == f"{env['DAGSTER_HOME']}/dagster.yaml"
    assert copies[(str(DOCKER_WORKSPACE.relative_to(ROOT)),)] == f"{workdir}/{DOCKER_WORKSPACE.name}"

    # Every port compose and the chart use is exposed; the data directory is the one both mount.
    exposed = {p for c in commands if c.cmd == "EXPOSE" for p in c.value}
    services = compose_config()["services"]
    [deployment] = load_yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    assert option(services["user_code"]["command"], "-p") in exposed
    assert option(services["webserver"]["command"], "-p") in exposed
    assert str(deployment["port"]) in exposed
    assert services["user_code"]["environment"][paths.DATA_DIR_ENV] == env[paths.DATA_DIR_ENV]
    assert [m["mountPath"] for m in deployment["volumeMounts"]] == [env[paths.DATA_DIR_ENV]]
    cmd = [c for c in commands if c.cmd == "CMD"][-1]
    assert list(cmd.value) == services["user_code"]["command"]


# Helm ---------------------------------------------------------------------------------------------------------------
# The chart (dagster/dagster) and helm cannot be fetched here, so the values are checked against an explicit copy of
# the documented structure of the keys: taken from the chart's schema models (helm/dagster/schema in the Dagster
# repository: values.py, subschema/*.py) and, for dagsterDaemon.runMonitoring / runRetries (free-form in the schema),
# from the keys the chart's instance template reads. A key outside it is a typo or a key the chart ignores.

ANY = object()


class OneOf(tuple):
    """A value that must be one of these."""


def required(*names: str) -> dict:
    return {"__required__": set(names)}


IMAGE = {"repository": str, "tag": (str, int), "pullPolicy": OneOf(("Always", "IfNotPresent", "Never"))}
SECRET_REF = {"name": str, "optional": bool, **required("name")}
VOLUME_MOUNT = {
    "name": str, "mountPath": str, "readOnly": bool, "subPath": str, "subPathExpr": str, "mountPropagation": str,
    **required("name", "mountPath"),
}  # fmt: skip
VOLUME = {
    "name": str, "persistentVolumeClaim": {"claimName": str, "readOnly": bool, **required("claimName")},
    "configMap": ANY, "secret": ANY, "emptyDir": ANY, "nfs": ANY, "hostPath": ANY, "csi": ANY, "projected": ANY,
    **required("name"),
}  # fmt: skip
POD_FIELDS = {
    "annotations": dict, "nodeSelector": dict, "affinity": dict, "tolerations": list, "podSecurityContext": dict,
    "securityContext": dict, "resources": dict, "livenessProbe": dict, "readinessProbe": dict, "startupProbe": dict,
    "labels": dict, "schedulerName": str, "volumeMounts": [VOLUME_MOUNT], "volumes": [VOLUME],
    "env": (dict, list), "envConfigMaps": [SECRET_REF], "envSecrets": [SECRET_REF], "image": IMAGE,
}  # fmt: skip
USER_DEPLOYMENT = {
    **POD_FIELDS,
    "name": str, "dagsterApiGrpcArgs": [str], "codeServerArgs": [str], "port": int,
    "includeConfigInLaunchedRuns": {"enabled": bool},
    **required("name", "image", "port"),
}  # fmt: skip
K8S_RUN_LAUNCHER = {
    "image": IMAGE, "imagePullPolicy": OneOf(("Always", "IfNotPresent", "Never")), "jobNamespace": str,
    "loadInclusterConfig": bool, "kubeconfigFile": str, "envConfigMaps": [SECRET_REF], "envSecrets": [SECRET_REF],
    "envVars": [str], "volumeMounts": [VOLUME_MOUNT], "volumes": [VOLUME], "labels": dict,
    "failPodOnRunFailure": bool, "resources": dict, "schedulerName": str, "securityContext": dict,
    "runK8sConfig": {k: dict for k in ("containerConfig", "podSpecConfig", "podTemplateSpecMetadata", "jobSpecConfig",
                                        "jobMetadata")},
}  # fmt: skip
CHART_VALUES = {
    "global": {k: str for k in ("postgresqlSecretName", "dagsterHome", "serviceAccountName", "celeryConfigSecretName",
                                "dagsterInstanceConfigMap")},
    "generatePostgresqlPasswordSecret": bool,
    "generateCeleryConfigSecret": bool,
    "postgresql": {
        "image": IMAGE, "enabled": bool, "postgresqlHost": str, "postgresqlUsername": str,
        "postgresqlPassword": str, "postgresqlDatabase": str, "postgresqlParams": dict, "postgresqlScheme": str,
        "service": {"port": int},
    },
    "dagster-user-deployments": {
        "enabled": bool, "enableSubchart": bool, "imagePullSecrets": [SECRET_REF], "deployments": [USER_DEPLOYMENT],
    },
    "runLauncher": {
        "type": OneOf(("K8sRunLauncher", "CeleryK8sRunLauncher", "CustomRunLauncher")),
        "config": {"k8sRunLauncher": K8S_RUN_LAUNCHER, "celeryK8sRunLauncher": ANY, "customRunLauncher": ANY},
        **required("type"),
    },
    "dagsterDaemon": {
        **POD_FIELDS,
        "enabled": bool, "heartbeatTolerance": int, "deploymentLabels": dict, "sensors": ANY, "schedules": ANY,
        "runCoordinator": {
            "enabled": bool, "type": OneOf(("QueuedRunCoordinator", "CustomRunCoordinator")),
            "config": {"queuedRunCoordinator": ANY, "customRunCoordinator": ANY},
        },
        "runMonitoring": {
            "enabled": bool, "startTimeoutSeconds": int, "cancelTimeoutSeconds": int, "maxResumeRunAttempts": int,
            "pollIntervalSeconds": int, "freeSlotsAfterRunEndSeconds": int,
        },
        "runRetries": {"enabled": bool, "maxRetries": int},
    },
    "dagsterWebserver": {
        **POD_FIELDS,
        "replicaCount": int, "nameOverride": str, "pathPrefix": str, "service": ANY, "workspace": ANY,
        "deploymentLabels": dict, "enableReadOnly": bool, "dbStatementTimeout": int, "dbPoolRecycle": int,
        "logLevel": str,
    },
    "concurrency": {
        "enabled": bool,
        "pools": {"defaultLimit": int, "granularity": OneOf(("run", "op")), "opGranularityRunBuffer": int},
        "runs": {"maxConcurrentRuns": int, "tagConcurrencyLimits": list},
    },
    "telemetry": {"enabled": bool},
    **{k: ANY for k in ("rabbitmq", "redis", "flower", "ingress", "imagePullSecrets", "computeLogManager",
                        "scheduler", "pythonLogs", "busybox", "migrate", "serviceAccount", "retention",
                        "additionalInstanceConfig")},
}  # fmt: skip


def chart_key_errors(value, spec, where: str = "") -> list[str]:
    """Where ``value`` leaves the documented structure ``spec`` (empty: it fits)."""
    if spec is ANY:
        return []
    if isinstance(spec, OneOf):
        return [] if value in spec else [f"{where}: {value!r} is not one of {list(spec)}"]
    if isinstance(spec, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, found {value!r}"]
        return [e for i, item in enumerate(value) for e in chart_key_errors(item, spec[0], f"{where}[{i}]")]
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected a mapping, found {value!r}"]
        errors = [f"{where}: missing {name}" for name in sorted(spec.get("__required__", set()) - set(value))]
        for key, item in value.items():
            if key not in spec or key == "__required__":
                errors.append(f"{where}.{key}: not a key of the chart")
            else:
                errors.extend(chart_key_errors(item, spec[key], f"{where}.{key}"))
        return errors
    kinds = spec if isinstance(spec, tuple) else (spec,)
    if isinstance(value, bool) and bool not in kinds:
        return [f"{where}: expected {spec}, found {value!r}"]
    return [] if isinstance(value, kinds) else [f"{where}: expected {spec}, found {value!r}"]


def test_helm_values_use_only_documented_chart_keys():
    assert chart_key_errors(load_yaml(HELM_VALUES), CHART_VALUES) == []


def helm_merged(base, overlay):
    """Helm's merge of two values files: maps merge key by key, anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        return {key: helm_merged(base[key], value) if key in base else value for key, value in overlay.items()} | {
            key: value for key, value in base.items() if key not in overlay
        }
    return overlay


def test_helm_bucket_values_watch_a_bucket_with_no_shared_volume(monkeypatch):
    values = helm_merged(load_yaml(HELM_VALUES), load_yaml(HELM_BUCKET_VALUES))
    assert chart_key_errors(values, CHART_VALUES) == []
    [deployment] = values["dagster-user-deployments"]["deployments"]
    [base] = load_yaml(HELM_VALUES)["dagster-user-deployments"]["deployments"]
    # values.yaml's deployment, whole, less the volume, plus where the bucket is.
    assert {k: v for k, v in deployment.items() if k != "env"} == {
        k: v for k, v in base.items() if k not in ("volumes", "volumeMounts")
    }
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["ANALYTICS_UPLOADS_URL"].startswith("s3://")
    assert not any("SECRET" in name or "KEY_ID" in name for name in env)  # secrets stay in the secret
    assert values["runLauncher"] == load_yaml(HELM_VALUES)["runLauncher"]
    from analytics_pipeline.resources import uploads_from_environment

    monkeypatch.setenv("ANALYTICS_UPLOADS_URL", env["ANALYTICS_UPLOADS_URL"])
    monkeypatch.setenv("ANALYTICS_S3_REGION", env["ANALYTICS_S3_REGION"])
    assert str(uploads_from_environment(os.environ.get).location()) == env["ANALYTICS_UPLOADS_URL"]


def test_chart_key_check_rejects_what_the_chart_does_not_document():
    values = load_yaml(HELM_VALUES)
    values["postgresql"]["postgresqlHostname"] = "typo"
    values["dagster-user-deployments"]["deployments"][0]["port"] = "4000"
    values["runLauncher"]["type"] = "DockerRunLauncher"
    values["dagsterDaemon"]["runMonitoring"]["maxRuntimeSeconds"] = 7200
    del values["dagster-user-deployments"]["deployments"][0]["image"]
    errors = chart_key_errors(values, CHART_VALUES)
    assert len(errors) == 5, errors


def test_helm_values_run_this_project_like_the_compose_stack():
    values = load_yaml(HELM_VALUES)
    project_instance = load_yaml(ROOT / "dagster.yaml")

    # External PostgreSQL for Dagster's storage, its password from a secret nobody writes into a file.
    assert values["postgresql"]["enabled"] is False
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False

    # The user-code deployment: this project's module, on the port the image exposes, with the warehouse secret and
    # the shared data volume, both passed on to every run's pod.
    user_deployments = values["dagster-user-deployments"]
    assert user_deployments["enabled"] is True and user_deployments["enableSubchart"] is True
    [deployment] = user_deployments["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", pyproject()["tool"]["dagster"]["module_name"]]
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    [secret] = deployment["envSecrets"]
    [volume] = deployment["volumes"]
    [mount] = deployment["volumeMounts"]
    assert mount["name"] == volume["name"]
    pvc = load_yaml(DATA_PVC)
    assert (pvc["apiVersion"], pvc["kind"]) == ("v1", "PersistentVolumeClaim")
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]

    # Runs in Kubernetes Jobs, with the same secret.
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [secret]

    # The rest of dagster.yaml, in the chart's terms.
    daemon = values["dagsterDaemon"]
    monitoring = project_instance["run_monitoring"]
    assert daemon["runMonitoring"]["enabled"] is monitoring["enabled"] is True
    assert daemon["runMonitoring"]["startTimeoutSeconds"] == monitoring["start_timeout_seconds"]
    assert daemon["runMonitoring"]["pollIntervalSeconds"] == monitoring["poll_interval_seconds"]
    assert daemon["runMonitoring"]["maxResumeRunAttempts"] == monitoring["max_resume_run_attempts"]
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] == monitoring["free_slots_after_run_end_seconds"]
    assert daemon["runRetries"] == {
        "enabled": project_instance["run_retries"]["enabled"],
        "maxRetries": project_instance["run_retries"]["max_retries"],
    }
    assert values["concurrency"] == {
        "enabled": True,
        "runs": {"maxConcurrentRuns": project_instance["concurrency"]["runs"]["max_concurrent_runs"]},
        "pools": {"defaultLimit": project_instance["concurrency"]["pools"]["default_limit"]},
    }
    # The chart refuses concurrency.runs together with the run coordinator's own limit.
    assert "runCoordinator" not in daemon
    assert values["telemetry"]["enabled"] is project_instance["telemetry"]["enabled"]


# README -------------------------------------------------------------------------------------------------------------


def test_readme_documents_the_exact_commands():
    values = load_yaml(HELM_VALUES)
    [deployment] = values["dagster-user-deployments"]["deployments"]

    assert readme_command("helm", "repo", "add") == [["helm", "repo", "add", "dagster", "https://dagster-io.github.io/helm"]]
    [install] = readme_command("helm", "upgrade", "--install")
    assert "dagster/dagster" in install
    assert option(install, "-f") == str(HELM_VALUES.relative_to(ROOT))
    # The chart's version is the Dagster release the image pins (libraries 0.(N+16).x <-> dagster 1.N.x).
    library = pinned_versions()["dagster-docker"].split(".")
    assert option(install, "--version") == f"1.{int(library[1]) - 16}.{library[2]}"

    # The two secrets the values name, created from the environment, and consistent with the values.
    secrets = {words[4]: words[5:] for words in readme_command("kubectl", "create", "secret", "generic")}
    assert set(secrets) == {values["global"]["postgresqlSecretName"], deployment["envSecrets"][0]["name"]}
    literals = {
        name: dict(
            word.removeprefix("--from-literal=").split("=", 1) for word in words if word.startswith("--from-literal=")
        )
        for name, words in secrets.items()
    }
    assert set(literals[values["global"]["postgresqlSecretName"]]) == {"postgresql-password"}
    url = urlsplit(literals[deployment["envSecrets"][0]["name"]][server.DATABASE_URL_ENV])
    postgresql = values["postgresql"]
    assert url.scheme.startswith("postgresql")
    assert (url.hostname, url.port, url.username, url.path.lstrip("/")) == (
        postgresql["postgresqlHost"],
        postgresql["service"]["port"],
        postgresql["postgresqlUsername"],
        postgresql["postgresqlDatabase"],
    )
    assert url.password.startswith("$"), "the password comes from the shell's environment, not the README"
    assert readme_command("kubectl", "apply", "-f", str(DATA_PVC.relative_to(ROOT)))

    # The image the values name is the one the README builds and pushes.
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    assert ["docker", "build", "-t", image, "."] in readme_commands()
    assert ["docker", "push", image] in readme_commands()

    # docker-compose: started with the password from the environment.
    assert any(w[:3] == ["docker", "compose", "up"] for w in readme_commands())


# The definitions the images serve --------------------------------------------------------------------------------


def test_dagster_definitions_validate_passes(warehouse_url):
    bin_dir = os.path.dirname(sys.executable)
    result = subprocess.run(
        [os.path.join(bin_dir, "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation successful" in result.stderr + result.stdout


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_test_dependencies_are_declared():
    """The libraries these tests import are in the dev extra, so a fresh `./run.sh test` has them."""
    dev = " ".join(pyproject()["project"]["optional-dependencies"]["dev"])
    for name in ("dagster-docker", "dockerfile", "pip-audit", "markdown-it-py"):
        assert re.search(rf"(^| ){re.escape(name)}([<>=~ ]|$)", dev), name
