"""docker-compose.yaml, checked without a Docker engine.

From the YAML and the Dockerfiles: services and profiles, pinned images (and a BSD-licensed
Redis), health checks, a condition on every `depends_on`, every directory a non-root service
writes, secrets only from .env, superuser credentials only in the init services, the images
built from the locks. And the containers' own scripts, run outside Docker where they can be:
docker/airflow/init.sh against a real PostgreSQL as root dropping to an unprivileged uid,
docker/lake-init.sh against moto's S3 server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path, PurePosixPath

import psycopg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (REPO / "docker-compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
    if line and not line.startswith("#")
)
ONE_SHOT = {name for name, svc in SERVICES.items() if svc.get("restart") == "no"}
INIT = {"minio-init", "airflow-init"}  # the only services given a superuser credential
SERVERS = {"postgres", "minio"}        # ... besides the servers whose superuser it is
SUPERUSER_SECRETS = {"WAREHOUSE_PASSWORD", "MINIO_ROOT_PASSWORD"}
# Host folders docker creates when missing (the user's own data); everything else must exist.
USER_DATA_MOUNTS = {"./data/import"}
AIRFLOW_UID = "50000"


def _locked_version(lock: Path, package: str) -> str:
    for pkg in tomllib.loads(lock.read_text())["package"]:
        if pkg["name"] == package:
            return pkg["version"]
    raise AssertionError(f"{package} not in {lock}")


def _dockerfiles() -> dict[str, Path]:
    return {name: REPO / svc["build"]["context"] / svc["build"]["dockerfile"]
            for name, svc in SERVICES.items() if "build" in svc}


def _profile(name: str) -> set[str]:
    return {n for n, svc in SERVICES.items() if svc.get("profiles") == [name]}


def test_services_of_the_stack_and_the_profiles():
    assert {"postgres", "minio", "minio-init", "lake-init", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "superset"} <= set(SERVICES)
    assert _profile("celery") == {"redis", "airflow-worker"}
    assert _profile("cli") == {"airflow-cli"}
    assert all(s.get("profiles") in (None, ["celery"], ["cli"]) for s in SERVICES.values())
    airflow = [n for n in SERVICES if n.startswith("airflow-")]
    for name in airflow:
        env = SERVICES[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("fab_auth_manager.FabAuthManager}"), name
        assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true", name


def test_the_celery_profile_is_complete():
    worker, redis = SERVICES["airflow-worker"], SERVICES["redis"]
    assert worker["command"][:3] == ["airflow", "celery", "worker"]
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    broker = worker["environment"]["AIRFLOW__CELERY__BROKER_URL"]
    assert re.fullmatch(r"redis://redis:6379/\d+", broker)
    assert worker["environment"]["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert "ports" not in redis  # the broker has no password: never published
    # The executor switch, the image's Celery provider and the worker count come from .env.
    assert {"AIRFLOW_EXECUTOR", "LAKEHOUSE_CELERY", "AIRFLOW_WORKERS"} <= set(ENV_EXAMPLE)
    assert worker["build"]["args"]["INSTALL_CELERY"] == "${LAKEHOUSE_CELERY:-false}"
    dockerfile = (REPO / "docker/airflow/Dockerfile").read_text()
    assert re.search(r'if \[ "\$INSTALL_CELERY" = "true" \].*\n.*"\$CELERY_PROVIDER"', dockerfile)
    assert re.search(r"^ARG CELERY_PROVIDER=apache-airflow-providers-celery==[\d.]+$",
                     dockerfile, re.MULTILINE)


def test_redis_is_a_bsd_licensed_line():
    # Redis 7.4 and later are RSALv2/SSPL; 7.2 and Valkey are BSD-3-Clause.
    image = SERVICES["redis"]["image"]
    match = re.fullmatch(r"redis:(\d+)\.(\d+)\.\d+(-\w+)?", image)
    if match:
        assert (int(match[1]), int(match[2])) <= (7, 2), image
    else:
        assert re.fullmatch(r"valkey/valkey:\d+\.\d+\.\d+(-\w+)?", image), image


def test_every_image_is_pinned():
    images = {n: s["image"] for n, s in SERVICES.items() if "image" in s}
    for name, svc in SERVICES.items():
        for key in ("AIRFLOW_IMAGE",):
            if key in svc.get("build", {}).get("args", {}):
                images[f"{name}:{key}"] = svc["build"]["args"][key]
    for path in set(_dockerfiles().values()):
        text = path.read_text()
        defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.MULTILINE))
        for ref in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
            images[f"{path.name}:{ref}"] = defaults.get(ref.strip("${}"), ref)
    assert len(images) >= 10
    for where, image in images.items():
        _, _, tag = image.rpartition(":")
        assert tag and "/" not in tag and tag != "latest" and re.search(r"\d", tag), (where, image)


def test_airflow_image_is_the_locked_airflow_version():
    locked = _locked_version(REPO / "uv.lock", "apache-airflow")
    image = SERVICES["airflow-apiserver"]["build"]["args"]["AIRFLOW_IMAGE"]
    assert re.fullmatch(rf"apache/airflow:(slim-)?{re.escape(locked)}-python3\.11", image)


def test_long_running_services_have_health_checks_and_start_in_order():
    assert ONE_SHOT == {"minio-init", "lake-init", "airflow-init"}
    for name, svc in SERVICES.items():
        if name not in ONE_SHOT and svc.get("profiles") != ["cli"]:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        depends = svc.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, cond in depends.items():
            assert dep in SERVICES and dep != name, (name, dep)
            condition = cond["condition"]
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, dep)
            else:
                assert condition == "service_healthy", (name, dep)
    assert "postgres" in SERVICES["airflow-init"]["depends_on"]
    assert "minio-init" in SERVICES["lake-init"]["depends_on"]
    assert "lake-init" in SERVICES["airflow-scheduler"]["depends_on"]
    assert "airflow-init" in SERVICES["superset"]["depends_on"]  # creates its warehouse login
    for name in SERVICES:
        if name.startswith("airflow-") and name != "airflow-init":
            assert SERVICES[name]["depends_on"]["airflow-init"] == \
                {"condition": "service_completed_successfully"}, name


def test_every_referenced_file_exists():
    for name, path in _dockerfiles().items():
        assert path.is_file(), (name, path)
    for name, svc in SERVICES.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")) and source not in USER_DATA_MOUNTS:
                assert (REPO / source).exists(), (name, source)
        command = svc.get("command", [])
        for arg in command if isinstance(command, list) else []:
            if arg.startswith("/opt/lakehouse/"):
                assert (REPO / arg.removeprefix("/opt/lakehouse/")).exists(), (name, arg)
    assert set(COMPOSE["volumes"]) >= {"postgres-data", "minio-data"}


@pytest.mark.parametrize("dockerfile", sorted({str(p.relative_to(REPO)) for p in _dockerfiles().values()}))
def test_every_copied_path_exists_and_passes_the_dockerignore(dockerfile):
    path = REPO / dockerfile
    ignore = Path(f"{path}.dockerignore").read_text().splitlines()
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    sources = []
    for line in path.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            parts = [p for p in line.split()[1:] if not p.startswith("--")]
            sources += parts[:-1]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), (dockerfile, src)
        assert any(src.rstrip("/") == a or fnmatch.fnmatch(src, a) or src.startswith(a + "/")
                   for a in allowed), f"{dockerfile}: {src} is excluded by its .dockerignore"


def test_images_install_from_the_lock_files_not_at_start():
    airflow = (REPO / "docker/airflow/Dockerfile").read_text()
    assert re.search(r"^COPY pyproject.toml uv.lock ", airflow, re.MULTILINE)
    assert "uv export --frozen --no-dev" in airflow
    assert re.search(r"pip install --no-cache-dir -r /opt/lakehouse/requirements.txt", airflow)
    superset = (REPO / "docker/superset/Dockerfile").read_text()
    assert "COPY superset/requirements.lock" in superset
    assert "-r /app/requirements.lock" in superset
    lock = (REPO / "superset/requirements.lock").read_text()
    pins = [ln for ln in lock.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert "apache-superset==6.1.0" in pins and all("==" in p for p in pins)
    assert _locked_version(REPO / "uv.lock", "dbt-core").startswith("1.11.")
    assert "pip install" not in COMPOSE_TEXT and "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_TEXT


def test_every_variable_comes_from_env_example_and_no_secret_is_committed():
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-[^}]*)?\}", COMPOSE_TEXT))
    assert used, "no ${VAR} found: the pattern is wrong"
    assert used == set(ENV_EXAMPLE), {"missing": used - set(ENV_EXAMPLE),
                                      "unused": set(ENV_EXAMPLE) - used}
    for name, value in ENV_EXAMPLE.items():
        if re.search(r"PASSWORD|SECRET|FERNET", name):
            assert value == "change-me", name
    for name, svc in SERVICES.items():
        env = svc.get("environment", {})
        for key, value in (env.items() if isinstance(env, dict) else []):
            if re.search(r"PASSWORD|SECRET|FERNET", key) and not key.endswith("_FILE"):
                assert str(value).startswith("${"), (name, key)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], check=False, cwd=REPO)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_new_env_fills_every_placeholder(tmp_path):
    out = tmp_path / ".env"
    run = subprocess.run([sys.executable, str(REPO / "docker/new_env.py"), "--out", str(out)],
                         check=False, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    env = dict(ln.split("=", 1) for ln in out.read_text().splitlines()
               if ln and not ln.startswith("#"))
    assert set(env) == set(ENV_EXAMPLE) and "change-me" not in env.values()
    assert len({env[k] for k in env if "PASSWORD" in k}) == len([k for k in env if "PASSWORD" in k])
    import base64
    assert len(base64.urlsafe_b64decode(env["AIRFLOW_FERNET_KEY"])) == 32
    assert out.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, str(REPO / "docker/new_env.py"), "--out", str(out)],
                           check=False, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.count("\n") == 1
