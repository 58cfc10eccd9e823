"""docker-compose.yaml, checked without a Docker engine: services, pinned images, health
checks, start order, every referenced file and every ${VAR}, and images built from the locks."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib
from pathlib import Path

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
# Host folders docker creates when missing (the user's own data); everything else must exist.
USER_DATA_MOUNTS = {"./data/lake"}


def _locked_version(lock: Path, package: str) -> str:
    for pkg in tomllib.loads(lock.read_text())["package"]:
        if pkg["name"] == package:
            return pkg["version"]
    raise AssertionError(f"{package} not in {lock}")


def _dockerfiles() -> dict[str, Path]:
    return {name: REPO / svc["build"]["context"] / svc["build"]["dockerfile"]
            for name, svc in SERVICES.items() if "build" in svc}


def test_services_of_the_stack_and_the_celery_profile():
    assert {"postgres", "minio", "lake-init", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
            "superset"} <= set(SERVICES)
    default = {n for n, s in SERVICES.items() if "profiles" not in s}
    celery = {n for n, s in SERVICES.items() if s.get("profiles") == ["celery"]}
    assert celery == {"redis", "airflow-worker"}
    assert "redis" not in default
    airflow = [n for n in SERVICES if n.startswith("airflow-")]
    for name in airflow:
        assert SERVICES[name]["environment"]["AIRFLOW__CORE__EXECUTOR"] == \
            "${AIRFLOW_EXECUTOR:-LocalExecutor}", name
    assert SERVICES["airflow-worker"]["command"][:3] == ["airflow", "celery", "worker"]


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
    assert ONE_SHOT == {"lake-init", "airflow-init"}
    for name, svc in SERVICES.items():
        if name not in ONE_SHOT:
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
        for dep, cond in svc.get("depends_on", {}).items():
            assert dep in SERVICES and dep != name, (name, dep)
            condition = cond["condition"]
            if dep in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, dep)
            else:
                assert condition == "service_healthy", (name, dep)
    assert "postgres" in SERVICES["airflow-init"]["depends_on"]
    assert "minio" in SERVICES["lake-init"]["depends_on"]
    assert "airflow-init" in SERVICES["superset"]["depends_on"]  # creates its warehouse login


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
