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
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path, PurePosixPath

import psycopg
import pytest
import yaml

from tests.conftest import free_port

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


# Keys of the Compose specification this file may use (a typo such as `healtcheck` or
# `depend_on` would otherwise be ignored by nothing but a real engine).
SERVICE_KEYS = {"image", "build", "user", "environment", "volumes", "depends_on", "command",
                "entrypoint", "ports", "healthcheck", "restart", "profiles", "deploy"}
HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period"}
BUILD_KEYS = {"context", "dockerfile", "args"}


def test_only_compose_specification_keys():
    assert set(COMPOSE) <= {"name", "services", "volumes", "x-airflow-common"}
    for name, svc in SERVICES.items():
        assert set(svc) <= SERVICE_KEYS, (name, set(svc) - SERVICE_KEYS)
        assert set(svc.get("healthcheck", {})) <= HEALTHCHECK_KEYS, name
        assert set(svc.get("build", {})) <= BUILD_KEYS, name
        assert svc.get("restart", "no") in {"no", "unless-stopped", "always", "on-failure"}, name
        assert set(svc.get("deploy", {})) <= {"replicas"}, name
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            assert source.startswith((".", "/")) or source in COMPOSE["volumes"], (name, vol)


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


# --- least privilege --------------------------------------------------------------------------

SECRETS = {name for name in ENV_EXAMPLE if re.search(r"PASSWORD|SECRET|FERNET", name)}


def _env_refs(value) -> set[str]:
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", str(value)))


def test_every_secret_is_required_from_env_without_default():
    assert {"WAREHOUSE_PASSWORD", "MINIO_ROOT_PASSWORD", "MINIO_LAKE_PASSWORD",
            "LAKEHOUSE_LOADER_PASSWORD", "LAKEHOUSE_TRANSFORM_PASSWORD",
            "LAKEHOUSE_ML_PASSWORD"} <= SECRETS
    with_default = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?-", COMPOSE_TEXT))
    assert not SECRETS & with_default, SECRETS & with_default


def test_superuser_credentials_reach_only_the_init_services():
    for name, svc in SERVICES.items():  # the YAML loader has resolved every anchor and merge
        refs = set().union(*(_env_refs(v) for v in svc.get("environment", {}).values()))
        if name in INIT | SERVERS:
            continue
        assert not refs & SUPERUSER_SECRETS, (name, refs & SUPERUSER_SECRETS)
        env = svc.get("environment", {})
        assert env.get("PGUSER") != "${WAREHOUSE_USER}", name
        assert env.get("AWS_ACCESS_KEY_ID", "${MINIO_LAKE_USER}") == "${MINIO_LAKE_USER}", name
    assert SERVICES["airflow-init"]["environment"]["PGPASSWORD"] == "${WAREHOUSE_PASSWORD}"
    assert SERVICES["minio-init"]["environment"]["MINIO_ROOT_PASSWORD"] == "${MINIO_ROOT_PASSWORD}"


def test_each_part_logs_in_as_its_own_login():
    env = SERVICES["airflow-scheduler"]["environment"]
    for part in ("loader", "transform", "ml"):
        assert env[f"LAKEHOUSE_{part.upper()}_DB_USER"] == f"lakehouse_{part}_login"
        assert env[f"LAKEHOUSE_{part.upper()}_PASSWORD"] == f"${{LAKEHOUSE_{part.upper()}_PASSWORD}}"
    # dbt (Cosmos) reads the connection: the transform login, building as its group role.
    assert env["AIRFLOW_CONN_WAREHOUSE"].startswith(
        "postgresql://lakehouse_transform_login:${LAKEHOUSE_TRANSFORM_PASSWORD}@postgres:")
    assert env["DBT_ROLE"] == "lakehouse_transform"
    assert "LAKEHOUSE_SUPERSET_PASSWORD" not in env  # only Superset and the init that sets it
    init = (REPO / "docker/airflow/init.sh").read_text()
    assert "python -m lakehouse.roles apply --superset-login --part-logins" in init


def test_the_lake_user_is_limited_to_the_lake_bucket():
    script = (REPO / "docker/minio/init.sh").read_text()
    policy = json.loads(re.search(r"<<JSON\n(.*?)\nJSON", script, re.DOTALL)[1])
    resources = {r for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {"arn:aws:s3:::$LAKE_BUCKET", "arn:aws:s3:::$LAKE_BUCKET/*"}
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert all(a.startswith("s3:") and "*" not in a for a in actions), actions
    assert not {a for a in actions if "Bucket" in a and a.startswith(("s3:Create", "s3:Delete",
                                                                          "s3:PutBucket"))}
    assert {st["Effect"] for st in policy["Statement"]} == {"Allow"}
    for step in ("mc mb --ignore-existing", "mc admin policy create", "mc admin user add",
                 "mc admin policy attach"):
        assert step in script, step
    subprocess.run(["sh", "-n", str(REPO / "docker/minio/init.sh")], check=True)
    # The minio image is minimal: the script may call `mc` and shell built-ins only.
    code = "\n".join(ln.split("#")[0] for ln in script.splitlines() if not ln.startswith("#"))
    assert not re.findall(r"\b(grep|sed|awk|cat|mktemp|rm|jq|curl|tr|cut)\b", code)
    minio_init = SERVICES["minio-init"]
    assert minio_init["image"] == SERVICES["minio"]["image"]  # its `mc` is the health check's


def test_no_sample_data_unless_asked():
    lake_init = SERVICES["lake-init"]["environment"]
    assert lake_init["LAKEHOUSE_SAMPLE_YEARS"] == "${LAKEHOUSE_SAMPLE_YEARS:-}"
    assert ENV_EXAMPLE["LAKEHOUSE_SAMPLE_YEARS"] == ""
    assert not {k for k in lake_init if k.startswith("PG")}  # it never needs the warehouse


# --- who writes where ---------------------------------------------------------------------------

# Facts of the base images (not visible in our Dockerfiles): the official Airflow image's user
# `airflow` (uid 50000, gid 0) owns AIRFLOW_HOME and its logs folder.
BASE_IMAGE_OWNED = {"docker/airflow/Dockerfile": {"/opt/airflow": "airflow",
                                                  "/opt/airflow/logs": "airflow"}}
IMAGE_USERS = {"airflow": "50000", "superset": "50000"}


def _dockerfile_ownership(path: Path) -> tuple[dict[str, str], str]:
    """Directory -> owner after the build, and the image's final USER. A small model of
    Docker: WORKDIR creates a missing folder as root, RUN mkdir as the current USER, COPY
    --chown and chown set the owner; a RUN as a non-root user may only create inside folders
    that user owns."""
    rel = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    owned = dict(BASE_IMAGE_OWNED.get(rel, {}))
    user, workdir = ("airflow" if "AIRFLOW_IMAGE" in path.read_text() else "root"), "/"
    stages = path.read_text().replace("\\\n", " ").split("\nFROM ")
    for line in stages[-1].splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "USER":
            user = words[1].split(":")[0]
        elif words[0] == "WORKDIR":
            workdir = str(PurePosixPath(workdir, words[1]))
            owned.setdefault(workdir, "root")  # whatever USER says (the classic builder)
        elif words[0] == "COPY":
            chown = next((w.split("=", 1)[1].split(":")[0] for w in words if w.startswith("--chown=")), "root")
            if not any(w.startswith("--from=") for w in words):
                # COPY gives its owner to what it creates; a folder that exists keeps its own.
                owned.setdefault(str(PurePosixPath(workdir, words[-1])), chown)
        elif words[0] == "RUN":
            for cmd in " ".join(words[1:]).split("&&"):
                args = cmd.split()
                if not args:
                    continue
                targets = [str(PurePosixPath(workdir, a)) for a in args[1:] if not a.startswith("-")]
                if args[0] == "mkdir":
                    for target in targets:
                        parent = str(PurePosixPath(target).parent)
                        if user != "root":
                            assert owned.get(parent) == user, \
                                f"{rel}: `{cmd.strip()}` as {user} in {parent} owned by {owned.get(parent, 'root')}"
                        owned[target] = user
                elif args[0] == "chown" and user == "root":
                    owner = args[1].split(":")[0] if not args[1].startswith("-") else args[2].split(":")[0]
                    for target in targets[1:]:
                        owned[target] = owner
    return owned, user


def test_every_directory_a_service_writes_is_its_own():
    images = {}
    for name, dockerfile in _dockerfiles().items():
        images[name] = _dockerfile_ownership(dockerfile)
    init = SERVICES["airflow-init"]
    assert init["user"] == "0:0"
    prepared = set(init["environment"]["AIRFLOW_WRITABLE_DIRS"].split())
    assert init["environment"]["AIRFLOW_UID"] == AIRFLOW_UID
    init_mounts = set(init.get("volumes", []))
    checked = 0
    for name, (owned, image_user) in images.items():
        svc = SERVICES[name]
        if svc.get("user") == "0:0":
            continue
        uid = svc.get("user", IMAGE_USERS[image_user]).split(":")[0]
        assert uid != "0", f"{name} runs as root"
        assert uid == IMAGE_USERS[image_user], (name, uid, image_user)
        user = image_user
        for vol in svc.get("volumes", []):
            source, target, *mode = vol.split(":")
            if mode == ["ro"]:
                continue
            checked += 1
            ok_in_image = owned.get(target) == user
            ok_by_init = target in prepared and vol in init_mounts
            assert ok_in_image or ok_by_init, (
                f"{name} writes {target} ({source}) owned by {owned.get(target, 'root')} "
                f"in its image and not prepared by airflow-init")
    assert checked >= 10


def test_the_ownership_model_catches_a_non_root_mkdir(tmp_path):
    # The shape of a real mistake: WORKDIR creates the folder as root, then the image's user
    # cannot create anything in it.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.11-slim-bookworm\nWORKDIR /opt/x\nUSER app\n"
                   "RUN mkdir -p .dbt && cp a .dbt/\n")
    with pytest.raises(AssertionError, match="as app in /opt/x owned by root"):
        _dockerfile_ownership(bad)


def test_fab_provider_is_pinned_in_the_airflow_image_only():
    dockerfile = (REPO / "docker/airflow/Dockerfile").read_text()
    assert re.search(r"^ARG FAB_PROVIDER=apache-airflow-providers-fab==[\d.]+$", dockerfile, re.MULTILINE)
    assert 'pip install --no-cache-dir "$FAB_PROVIDER" -c /opt/lakehouse/requirements.txt' in dockerfile


def test_deploy_page_covers_the_walk_through():
    page = (REPO / "docs/deploy.md").read_text()
    for needed in ("# Deploy with docker compose", "python docker/new_env.py",
                   "docker compose up -d --build", "http://localhost:8080", "http://localhost:8088",
                   "http://localhost:9001", "python -m loaders ingest", "pg_dump",
                   "--profile celery", "LAKEHOUSE_SAMPLE_YEARS", "SUPERSET_REIMPORT",
                   "docker compose build"):
        assert needed in page, needed


# --- the containers' scripts, run outside Docker ---------------------------------------------

VENV_BIN = str(Path(sys.executable).parent)
NOBODY = 65534
# The venv's interpreter lives under a private home on these machines: the unprivileged uid
# may read (not write) anything, as it could in the image, where the code is world-readable.
READ_ANYWHERE = "--inh-caps=+dac_read_search --ambient-caps=+dac_read_search"


def _script_env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("PG", "AIRFLOW", "LAKEHOUSE", "AWS_", "LAKE_"))}
    return {**keep, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "PYTHONPATH": str(REPO),
            "DO_NOT_TRACK": "1", **extra}


@pytest.fixture
def init_dirs():
    """An image's /opt/airflow (owned by the unprivileged uid) and two fresh volumes: one whose
    mount point the image lacks (auth: Docker makes it root's) and one it has (logs)."""
    base = Path(tempfile.mkdtemp(prefix="lakehouse-airflow-init-"))
    os.chmod(base, 0o755)
    home = base / "airflow"
    home.mkdir()
    os.chown(home, NOBODY, 0)
    (base / "logs").mkdir(mode=0o755)  # root's, as a volume made by an older image
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="the root step needs root (CI runs as root)")
def test_airflow_init_as_root_prepares_the_volumes_then_works_unprivileged(roles_cluster, init_dirs):
    cluster = roles_cluster.env()
    with psycopg.connect(host=cluster["PGHOST"], port=cluster["PGPORT"], user=cluster["PGUSER"],
                         dbname="postgres", autocommit=True) as admin:
        for db in ("airflow_meta", "lakehouse_compose"):
            admin.execute(f'drop database if exists "{db}"')
            admin.execute(f'create database "{db}"')
    auth, logs = init_dirs / "auth", init_dirs / "logs"
    env = _script_env(
        AIRFLOW_HOME=str(init_dirs / "airflow"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=(
            f"postgresql+psycopg2://{cluster['PGUSER']}@127.0.0.1:{cluster['PGPORT']}/airflow_meta"),
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(logs),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(auth / "passwords.json"),
        AIRFLOW_UID=str(NOBODY), AIRFLOW_WRITABLE_DIRS=f"{auth} {logs}",
        AIRFLOW_INIT_SETPRIV_ARGS=READ_ANYWHERE,
        AIRFLOW_ADMIN_USER="admin", AIRFLOW_ADMIN_PASSWORD="ui-secret",  # pragma: allowlist secret
        PGHOST=cluster["PGHOST"], PGPORT=cluster["PGPORT"], PGUSER=cluster["PGUSER"],
        PGDATABASE="lakehouse_compose",
        LAKEHOUSE_LOADER_PASSWORD="l-secret", LAKEHOUSE_TRANSFORM_PASSWORD="t-secret",  # pragma: allowlist secret
        LAKEHOUSE_ML_PASSWORD="m-secret", LAKEHOUSE_SUPERSET_PASSWORD="s-secret",  # pragma: allowlist secret
    )
    script = str(REPO / "docker/airflow/init.sh")

    # Without the root step (the service started as its own uid) the fresh volume is not
    # writable and init fails: the failure this script exists to prevent.
    as_uid = ["setpriv", f"--reuid={NOBODY}", "--regid=0", "--clear-groups",
              *READ_ANYWHERE.split(), "--"]
    unprepared = subprocess.run([*as_uid, "bash", "-c", f"mkdir -p {auth} && touch {logs}/x"],
                                env=env, capture_output=True, text=True, check=False)
    assert unprepared.returncode != 0 and "Permission denied" in unprepared.stderr

    for attempt in range(2):  # every `docker compose up` runs it again
        run = subprocess.run(["bash", script], env=env, capture_output=True, text=True,
                             check=False, timeout=600)
        assert run.returncode == 0, (attempt, run.stdout[-2000:], run.stderr[-3000:])
        for folder in (auth, logs):
            assert (folder.stat().st_uid, folder.stat().st_gid) == (NOBODY, 0), folder
        passwords = auth / "passwords.json"
        assert passwords.stat().st_uid == NOBODY  # written by the unprivileged part
        assert passwords.stat().st_mode & 0o777 == 0o600
        assert json.loads(passwords.read_text()) == {"admin": "ui-secret"}
    assert "part logins lakehouse_loader_login, lakehouse_transform_login, lakehouse_ml_login" \
        in run.stderr
    with psycopg.connect(host=cluster["PGHOST"], port=cluster["PGPORT"], user=cluster["PGUSER"],
                         dbname="airflow_meta", autocommit=True) as meta:
        assert meta.execute("select count(*) from alembic_version").fetchone() == (1,)
        assert meta.execute("select to_regclass('public.dag') is not null").fetchone() == (True,)
    with psycopg.connect(host=cluster["PGHOST"], port=cluster["PGPORT"], user=cluster["PGUSER"],
                         dbname="lakehouse_compose", autocommit=True) as wh:
        logins = dict(wh.execute(
            "select rolname, rolpassword from pg_authid where rolcanlogin "
            "and rolname like 'lakehouse\\_%'").fetchall())
    assert set(logins) == {"lakehouse_loader_login", "lakehouse_transform_login",
                           "lakehouse_ml_login", "lakehouse_superset"}
    assert all(p.startswith("SCRAM-SHA-256$") for p in logins.values())


def _s3():
    import boto3

    return boto3.client("s3")


def _lake_init(**extra: str) -> subprocess.CompletedProcess:
    lake = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "LAKE_URL"}
    env = _script_env(**{**lake, **extra})
    return subprocess.run(["bash", str(REPO / "docker/lake-init.sh")], env=env, cwd=REPO,
                          capture_output=True, text=True, check=False, timeout=300)


def _keys(bucket: str) -> dict[str, str]:
    listing = _s3().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listing}


def test_lake_init_reports_the_lake_and_fabricates_nothing(s3_lake):
    bucket = s3_lake.removeprefix("s3://").split("/")[0]
    _s3().put_object(Bucket=bucket, Key="lake/01_bronze/2017.csv", Body=b"a real year\n")
    before = _keys(bucket)
    run = _lake_init(LAKEHOUSE_YEARS="2016-2018")
    assert run.returncode == 0, run.stderr
    assert "bronze years present: 2017" in run.stdout
    assert "not in the lake yet: 2016, 2018" in run.stdout
    assert "python -m loaders ingest" in run.stdout
    assert _keys(bucket) == before  # nothing generated, the write probe cleaned up


def test_lake_init_generates_sample_years_only_when_asked(s3_lake):
    bucket = s3_lake.removeprefix("s3://").split("/")[0]
    _s3().put_object(Bucket=bucket, Key="lake/01_bronze/2017.csv", Body=b"a real year\n")
    real = _keys(bucket)["lake/01_bronze/2017.csv"]
    asked = {"LAKEHOUSE_YEARS": "2017-2018", "LAKEHOUSE_SAMPLE_YEARS": "2017 2018",
             "LAKEHOUSE_SAMPLE_ROWS": "2000"}
    run = _lake_init(**asked)
    assert run.returncode == 0, run.stderr
    assert "bronze 2017 is already in the lake: left as it is" in run.stdout
    keys = _keys(bucket)
    assert keys["lake/01_bronze/2017.csv"] == real
    assert "lake/01_bronze/2018.csv" in keys
    head = _s3().get_object(Bucket=bucket, Key="lake/01_bronze/2018.csv")["Body"].read(200)
    assert head.startswith(b"FL_DATE,OP_CARRIER,")
    again = _lake_init(**asked)
    assert again.returncode == 0, again.stderr
    assert _keys(bucket) == keys  # idempotent: no year is generated twice


def test_lake_init_errors_are_one_line(s3_lake):
    bad_years = _lake_init(LAKEHOUSE_YEARS="2018", LAKEHOUSE_SAMPLE_YEARS="18")
    assert bad_years.returncode == 2
    assert bad_years.stderr.count("\n") == 1 and '"18" is not a year' in bad_years.stderr
    no_bucket = _lake_init(LAKEHOUSE_YEARS="2018", LAKE_URL="s3://no-such-bucket-here/lake")
    assert no_bucket.returncode == 1
    assert no_bucket.stderr.count("\n") == 1
    assert "cannot write the lake s3://no-such-bucket-here/lake" in no_bucket.stderr


@pytest.fixture
def iam_s3():
    """moto's server with IAM enforced: after the first 5 requests (the set-up below), every
    request is checked against its caller's policies, the way MinIO checks its users'."""
    import boto3

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "5"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.1)
        root = {"endpoint_url": endpoint, "region_name": "us-east-1",
                "aws_access_key_id": "root", "aws_secret_access_key": "root"}
        script = (REPO / "docker/minio/init.sh").read_text()
        policy = re.search(r"<<JSON\n(.*?)\nJSON", script, re.DOTALL)[1]
        s3, iam = boto3.client("s3", **root), boto3.client("iam", **root)
        s3.create_bucket(Bucket="lake")
        s3.create_bucket(Bucket="other")
        iam.create_user(UserName="pipeline")
        iam.put_user_policy(UserName="pipeline", PolicyName="lakehouse-lake",
                            PolicyDocument=policy.replace("$LAKE_BUCKET", "lake"))
        key = iam.create_access_key(UserName="pipeline")["AccessKey"]
        yield {"AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
               "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)


def test_the_lake_policy_allows_the_lake_bucket_and_nothing_else(iam_s3):
    import boto3
    from botocore.exceptions import ClientError

    user = boto3.client("s3", endpoint_url=iam_s3["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=iam_s3["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=iam_s3["AWS_SECRET_ACCESS_KEY"])
    user.put_object(Bucket="lake", Key="lake/01_bronze/2018.csv", Body=b"x")
    assert user.get_object(Bucket="lake", Key="lake/01_bronze/2018.csv")["Body"].read() == b"x"
    assert user.list_objects_v2(Bucket="lake")["KeyCount"] == 1
    user.delete_object(Bucket="lake", Key="lake/01_bronze/2018.csv")
    for denied in (lambda: user.put_object(Bucket="other", Key="a", Body=b"x"),
                   lambda: user.list_objects_v2(Bucket="other"),
                   lambda: user.create_bucket(Bucket="mine"),
                   lambda: user.delete_bucket(Bucket="lake"),
                   lambda: user.list_buckets(),
                   lambda: user.put_bucket_policy(Bucket="lake", Policy="{}")):
        with pytest.raises(ClientError, match="AccessDenied"):
            denied()
    # lake-init and the generator work with exactly these rights; another bucket is refused.
    ok = _lake_init(**iam_s3, LAKE_URL="s3://lake/lake", LAKEHOUSE_YEARS="2017-2018",
                    LAKEHOUSE_SAMPLE_YEARS="2018", LAKEHOUSE_SAMPLE_ROWS="1000")
    assert ok.returncode == 0, ok.stderr
    assert "bronze years present: none" in ok.stdout
    assert user.head_object(Bucket="lake", Key="lake/01_bronze/2018.csv")["ContentLength"] > 0
    refused = _lake_init(**iam_s3, LAKE_URL="s3://other/lake", LAKEHOUSE_YEARS="2018")
    assert refused.returncode == 1 and "AccessDenied" in refused.stderr


@pytest.mark.slow
def test_the_dag_runs_with_the_stacks_logins_and_no_owner_credential(roles_cluster, tmp_path,
                                                                      tmp_path_factory):
    """The compose wiring of the warehouse, on a real DAG run: dbt through the connection as the
    transform login, the loader and scoring as their own logins (LAKEHOUSE_<PART>_DB_USER), the
    owner's credential nowhere in the run's environment. A part given another part's login
    cannot write its schema, so a green run shows each used its own."""
    from devtools import airflow_local
    from lakehouse.lake import Lake
    from loaders.generate import generate_year

    cluster = roles_cluster.env()
    owner = {**cluster, "PGDATABASE": "compose_pipeline"}
    with psycopg.connect(host=owner["PGHOST"], port=owner["PGPORT"], user=owner["PGUSER"],
                         dbname="postgres", autocommit=True) as admin:
        admin.execute("drop database if exists compose_pipeline")
        admin.execute("create database compose_pipeline")
    logins = {f"LAKEHOUSE_{p.upper()}_{k}": v for p in ("loader", "transform", "ml")
              for k, v in (("DB_USER", f"lakehouse_{p}_login"), ("PASSWORD", f"{p}-pw"))}
    applied = subprocess.run(
        [sys.executable, "-m", "lakehouse.roles", "apply", "--superset-login", "--part-logins"],
        env=_script_env(**owner, **logins), cwd=REPO, capture_output=True, text=True, check=False)
    assert applied.returncode == 0, applied.stderr

    lake = tmp_path / "lake"
    generate_year(2016, rows=60_000, seed=11, lake=Lake(str(lake)))
    manifest = airflow_local.dbt_parse(tmp_path_factory.mktemp("dbt-target"))
    transform = {**owner, "PGUSER": "lakehouse_transform_login", "PGPASSWORD": "transform-pw"}  # pragma: allowlist secret
    home = tmp_path / "airflow"
    env = airflow_local.airflow_env(home, pg_env=transform,
                                    base=_script_env(LAKE_URL=str(lake), **logins,
                                                     DBT_ROLE="lakehouse_transform"))
    env["LAKEHOUSE_DBT_MANIFEST"] = str(manifest)
    assert json.loads(env["AIRFLOW_CONN_WAREHOUSE"])["login"] == env["PGUSER"] == \
        "lakehouse_transform_login"
    airflow_local.prepare_home(env)
    log = tmp_path / "run.log"
    code, tasks = airflow_local.run_dag(env, {"year": 2016}, log)
    failed = {t: i["state"] for t, i in tasks.items() if i["state"] != "success"}
    assert code == 0 and tasks and not failed, f"DAG run failed: {failed}; log: {log.read_text()[-3000:]}"

    with psycopg.connect(host=owner["PGHOST"], port=owner["PGPORT"], user=owner["PGUSER"],
                         dbname="compose_pipeline", autocommit=True) as c:
        owners = dict(c.execute(
            "select n.nspname, string_agg(distinct pg_get_userbyid(c.relowner), ',') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('staging', 'silver', 'gold', 'ml') and c.relkind in ('r', 'p', 'v') "
            "group by 1").fetchall())
        scored = c.execute("select count(*) from ml.dep_delay_anomalies where year = 2016").fetchone()[0]
    assert owners == {"staging": "lakehouse_loader", "silver": "lakehouse_transform",
                      "gold": "lakehouse_transform", "ml": "lakehouse_ml"}
    assert scored > 0


@pytest.mark.slow
@pytest.mark.superset
def test_superset_container_imports_once_and_never_resets_the_admin(tmp_path, pg_env):
    """What `manage.py serve` (the superset service) does at each start: the first imports the
    bundle and creates the admin; a later one keeps a password changed in the UI and the
    dashboards as users left them; SUPERSET_REIMPORT=1 imports again."""
    import sqlite3

    env = {**_script_env(**pg_env), "SUPERSET_HOME": str(tmp_path / "home"),
           "SUPERSET_ADMIN_PASSWORD": "from-env"}  # pragma: allowlist secret
    subprocess.run(["make", "-s", ".venv-superset/.synced"], cwd=REPO, env=env, check=True,
                   capture_output=True, timeout=1800)
    python = str(REPO / ".venv-superset/bin/python")
    start = [python, "-c", ("import sys; sys.path.insert(0, 'superset'); import manage; "
                           "manage.setup(keep_user_changes=True)")]

    def admin_hash() -> str:
        with sqlite3.connect(tmp_path / "home" / "superset.db") as db:
            return db.execute("select password from ab_user where username = 'admin'").fetchone()[0]

    def run(**extra: str) -> subprocess.CompletedProcess:
        done = subprocess.run(start, cwd=REPO, env={**env, **extra}, capture_output=True,
                              text=True, check=False, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    run()
    bundle = tmp_path / "home" / "bundle.zip"
    imported_at = bundle.stat().st_mtime
    assert (tmp_path / "home" / "bundle-imported").read_text() == "1.0.0\n"
    # The admin changes the password in the UI (the same call the UI's form makes).
    superset_env = {**env, "FLASK_APP": "superset.app:create_app()",
                    "SUPERSET_CONFIG_PATH": str(REPO / "superset/superset_config.py"),
                    "SUPERSET_SECRET_KEY": (tmp_path / "home" / "secret_key").read_text().strip()}
    subprocess.run([str(REPO / ".venv-superset/bin/superset"), "fab", "reset-password",
                    "--username", "admin", "--password", "changed-in-the-ui"],
                   env=superset_env, cwd=REPO, check=True, capture_output=True, timeout=600)
    changed = admin_hash()

    again = run(SUPERSET_ADMIN_PASSWORD="from-env-edited")
    assert "SUPERSET_REIMPORT=1 imports the bundle again" in again.stderr
    assert admin_hash() == changed and bundle.stat().st_mtime == imported_at
