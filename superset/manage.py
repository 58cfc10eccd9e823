"""Superset for the lakehouse, run from its own virtualenv (`.venv-superset/bin/python`).

    python superset/manage.py bundle --out bundle.zip   zip the dashboard sources (superset/bundle/)
    python superset/manage.py setup                     metadata db, admin user, import the bundle
    python superset/manage.py start                     setup, then serve in the background
    python superset/manage.py stop                      stop what `start` started (process group)
    python superset/manage.py serve                     setup, then serve in the foreground (containers;
                                                        imports once, never resets the admin password)
    python superset/manage.py screenshot --out PNG      the dashboard in headless Chromium

State lives in SUPERSET_HOME (default `.local/superset`, git-ignored): the SQLite metadata, a
generated SECRET_KEY (unless SUPERSET_SECRET_KEY is set) and the generated admin password
(unless SUPERSET_ADMIN_PASSWORD is set). The dashboards read the warehouse through the
read-only login role LAKEHOUSE_SUPERSET_DB_USER (default `lakehouse_superset`; create it with
`python -m lakehouse.roles apply --superset-login`) at PGHOST/PGPORT/PGDATABASE, or at
SUPERSET_WAREHOUSE_URI when set. Errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
BUNDLE_SRC = HERE / "bundle"
VERSION = "1.0.0"
ADMIN = "admin"


class SetupError(RuntimeError):
    """A problem the user can fix; the message says how."""


def home() -> Path:
    path = Path(os.environ.get("SUPERSET_HOME", ".local/superset")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _generated(name: str, env_var: str) -> str:
    """A secret from the environment, else generated once into a 0600 file in SUPERSET_HOME."""
    if os.environ.get(env_var):
        return os.environ[env_var]
    path = home() / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def superset_env() -> dict[str, str]:
    env = dict(os.environ)
    env["SUPERSET_HOME"] = str(home())
    env["SUPERSET_CONFIG_PATH"] = str(HERE / "superset_config.py")
    env["FLASK_APP"] = "superset.app:create_app()"
    env["SUPERSET_SECRET_KEY"] = _generated("secret_key", "SUPERSET_SECRET_KEY")
    return env


def warehouse_uri() -> str:
    if os.environ.get("SUPERSET_WAREHOUSE_URI"):
        return os.environ["SUPERSET_WAREHOUSE_URI"]
    missing = [v for v in ("PGHOST", "PGPORT", "PGDATABASE") if not os.environ.get(v)]
    if missing:
        raise SetupError(
            f"{', '.join(missing)} not set: export the warehouse's PG* variables "
            "(`eval \"$(make -s db-env)\"`) or SUPERSET_WAREHOUSE_URI"
        )
    user = os.environ.get("LAKEHOUSE_SUPERSET_DB_USER", "lakehouse_superset")
    host, port, db = os.environ["PGHOST"], os.environ["PGPORT"], os.environ["PGDATABASE"]
    return f"postgresql+psycopg2://{user}@{host}:{port}/{db}"


# --- the bundle ------------------------------------------------------------------------------

COLUMN_DEFAULTS = {
    "verbose_name": None, "is_dttm": False, "is_active": True, "type": None,
    "advanced_data_type": None, "groupby": True, "filterable": True, "expression": None,
    "description": None, "python_date_format": None, "extra": {},
}
METRIC_DEFAULTS = {
    "verbose_name": None, "metric_type": None, "description": None, "d3format": None,
    "currency": None, "extra": {}, "warning_text": None,
}
DATASET_DEFAULTS = {
    "main_dttm_col": None, "description": None, "default_endpoint": None, "offset": 0,
    "cache_timeout": None, "sql": None, "params": None, "template_params": None,
    "filter_select_enabled": True, "fetch_values_predicate": None, "extra": None,
    "normalize_columns": False, "always_filter_main_dttm": False,
}
QUERY_DEFAULTS = {
    "filters": [], "extras": {"having": "", "where": ""}, "applied_time_extras": {},
    "columns": [], "metrics": [], "orderby": [], "annotation_layers": [], "row_limit": 1000,
    "series_limit": 0, "order_desc": True, "url_params": {}, "custom_params": {},
    "custom_form_data": {}, "post_processing": [], "time_offsets": [],
}


def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _chart(src: dict, datasets: dict[str, dict]) -> dict:
    dataset_uuid = src["dataset_uuid"]
    if dataset_uuid not in datasets:
        raise SetupError(f"chart {src['slice_name']!r}: no dataset with uuid {dataset_uuid}")
    # The datasource id is unknown until Superset imports the dataset; `setup` rewrites it.
    params = {**src["params"], "viz_type": src["viz_type"], "datasource": "0__table"}
    queries = [{**QUERY_DEFAULTS, **q} for q in src["queries"]]
    for q in queries:
        q["extras"] = {**QUERY_DEFAULTS["extras"], **q["extras"]}
    query_context = {
        "datasource": {"id": 0, "type": "table"}, "force": False, "queries": queries,
        "form_data": params, "result_format": "json", "result_type": "full",
    }
    return {
        "slice_name": src["slice_name"], "description": src.get("description"),
        "certified_by": None, "certification_details": None,
        "viz_type": src["viz_type"], "params": params,
        "query_context": json.dumps(query_context), "cache_timeout": None,
        "uuid": src["uuid"], "version": VERSION, "dataset_uuid": dataset_uuid,
    }


def _position(layout: list, charts: dict[str, dict]) -> dict:
    """Superset's layout tree from rows of [chart uuid, width, height]."""
    pos = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
    }
    for r, row in enumerate(layout, start=1):
        row_id = f"ROW-{r}"
        pos["GRID_ID"]["children"].append(row_id)
        pos[row_id] = {"type": "ROW", "id": row_id, "children": [],
                       "parents": ["ROOT_ID", "GRID_ID"],
                       "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for chart_uuid, width, height in row:
            if chart_uuid not in charts:
                raise SetupError(f"dashboard layout names chart {chart_uuid}, which has no source")
            chart_id = f"CHART-{chart_uuid[:8]}"
            pos[row_id]["children"].append(chart_id)
            pos[chart_id] = {
                "type": "CHART", "id": chart_id, "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {"width": width, "height": height, "chartId": 0,
                         "uuid": chart_uuid, "sliceName": charts[chart_uuid]["slice_name"]},
            }
    return pos


def build_bundle(out: Path, uri: str | None = None) -> Path:
    """Zip superset/bundle/ into Superset's import format, filling in the defaults it expects."""
    files: dict[str, dict] = {}
    db_src = _load(next((BUNDLE_SRC / "databases").glob("*.yaml")))
    database = {"cache_timeout": None, "version": VERSION, **db_src}
    if uri:
        database["sqlalchemy_uri"] = uri
    files["databases/lakehouse_warehouse.yaml"] = database

    datasets = {}
    for path in sorted((BUNDLE_SRC / "datasets").glob("*.yaml")):
        src = _load(path)
        ds = {**DATASET_DEFAULTS, **src, "version": VERSION}
        ds["columns"] = [{**COLUMN_DEFAULTS, **c} for c in src.get("columns", [])]
        ds["metrics"] = [{**METRIC_DEFAULTS, **m} for m in src.get("metrics", [])]
        if ds["database_uuid"] != database["uuid"]:
            raise SetupError(f"{path.name}: database_uuid is not the bundle's database")
        datasets[ds["uuid"]] = ds
        files[f"datasets/lakehouse_warehouse/{path.stem}.yaml"] = ds

    charts = {}
    for path in sorted((BUNDLE_SRC / "charts").glob("*.yaml")):
        chart = _chart(_load(path), datasets)
        charts[chart["uuid"]] = chart
        files[f"charts/{path.stem}.yaml"] = chart

    for path in sorted((BUNDLE_SRC / "dashboards").glob("*.yaml")):
        src = _load(path)
        metadata = {
            "timed_refresh_immune_slices": [], "expanded_slices": {}, "label_colors": {},
            "shared_label_colors": [], "color_scheme_domain": [], "default_filters": "{}",
            "chart_configuration": {}, "global_chart_configuration": {}, **src["metadata"],
        }
        for flt in metadata.get("native_filter_configuration", []):
            for target in flt["targets"]:
                if target["datasetUuid"] not in datasets:
                    raise SetupError(f"filter {flt['name']!r}: unknown dataset {target['datasetUuid']}")
        files[f"dashboards/{path.stem}.yaml"] = {
            "dashboard_title": src["dashboard_title"], "description": src.get("description"),
            "css": src.get("css", ""), "slug": src.get("slug"), "certified_by": None,
            "certification_details": None, "published": src.get("published", True),
            "uuid": src["uuid"], "position": _position(src["layout"], charts),
            "metadata": metadata, "version": VERSION,
        }

    out.parent.mkdir(parents=True, exist_ok=True)
    root = "lakehouse_dashboards"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        meta = {"version": VERSION, "type": "Dashboard", "timestamp": "2026-01-01T00:00:00+00:00"}
        zf.writestr(f"{root}/metadata.yaml", yaml.safe_dump(meta, sort_keys=False))
        for name, content in files.items():
            zf.writestr(f"{root}/{name}", yaml.safe_dump(content, sort_keys=False, allow_unicode=True))
    out.write_bytes(buf.getvalue())
    return out


# --- set-up and serving ----------------------------------------------------------------------

def _superset(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("superset")
    proc = subprocess.run([str(exe), *args], check=False, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SetupError(f"`superset {args[0]}` failed: {' | '.join(tail)}")
    return proc


# `superset import-dashboards` creates missing objects but never overwrites the database,
# datasets or charts a dashboard depends on; this runs their own importers with overwrite so
# an edited bundle takes effect, then points each saved query context at the dataset id this
# Superset assigned.
_REFRESH = """
import json, sys, zipfile
from superset.app import create_app
app = create_app()
with app.app_context():
    from flask import g
    from superset import security_manager
    from superset.commands.chart.importers.v1 import ImportChartsCommand
    from superset.commands.database.importers.v1 import ImportDatabasesCommand
    from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
    from superset.commands.importers.v1.utils import get_contents_from_bundle
    from superset.extensions import db
    from superset.models.slice import Slice
    g.user = security_manager.find_user(username=sys.argv[2])
    with zipfile.ZipFile(sys.argv[1]) as zf:
        contents = get_contents_from_bundle(zf)
    for name in [k for k in contents if k.endswith("metadata.yaml")]:
        contents[name] = "version: 1.0.0\\ntimestamp: '2026-01-01T00:00:00+00:00'\\n"
    for command in (ImportDatabasesCommand, ImportDatasetsCommand, ImportChartsCommand):
        command(dict(contents), overwrite=True).run()
    n = 0
    for s in db.session.query(Slice):
        if not s.query_context:
            continue
        qc = json.loads(s.query_context)
        qc["datasource"] = {"id": s.datasource_id, "type": s.datasource_type}
        qc["form_data"]["datasource"] = f"{s.datasource_id}__{s.datasource_type}"
        qc["form_data"]["slice_id"] = s.id
        s.query_context = json.dumps(qc)
        params = json.loads(s.params or "{}")
        params["datasource"] = qc["form_data"]["datasource"]
        s.params = json.dumps(params)
        n += 1
    db.session.commit()
    print(n)
"""


def _refresh_bundle_objects(bundle: Path, env: dict[str, str]) -> int:
    proc = subprocess.run([sys.executable, "-c", _REFRESH, str(bundle), ADMIN], check=False,
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise SetupError(f"refreshing the imported charts failed: {' | '.join(tail)}")
    return int(proc.stdout.strip().splitlines()[-1])


# In SUPERSET_HOME (a volume in compose): the bundle version the server imported last.
IMPORT_MARKER = "bundle-imported"


def setup(keep_user_changes: bool = False) -> dict[str, str]:
    """Metadata DB, admin user, dashboards.

    `keep_user_changes` (a server, `serve`): the admin's password is set when the user is
    created and never reset, and the bundle is imported on the first start only (a marker in
    SUPERSET_HOME), so what users change in the UI survives restarts; SUPERSET_REIMPORT=1
    imports it again. Without it (`make superset`) every start applies the bundle and the
    generated password, so edits to the bundle's sources take effect at once.
    """
    env = superset_env()
    password = _generated("admin_password", "SUPERSET_ADMIN_PASSWORD")
    uri = warehouse_uri()
    _superset("db", "upgrade", env=env)
    created = _superset("fab", "create-admin", "--username", ADMIN, "--firstname", "Lakehouse",
                        "--lastname", "Admin", "--email", "admin@localhost",
                        "--password", password, env=env)
    if "already exists" in created.stdout + created.stderr and not keep_user_changes:
        _superset("fab", "reset-password", "--username", ADMIN, "--password", password, env=env)
    _superset("init", env=env)
    marker = home() / IMPORT_MARKER
    if keep_user_changes and marker.exists() and os.environ.get("SUPERSET_REIMPORT") != "1":
        print(f"dashboards imported before ({marker}): kept as they are; "
              "SUPERSET_REIMPORT=1 imports the bundle again", file=sys.stderr)
        return env
    bundle = build_bundle(home() / "bundle.zip", uri=uri)
    _superset("import-dashboards", "-p", str(bundle), "-u", ADMIN, env=env)
    _refresh_bundle_objects(bundle, env)
    marker.write_text(f"{VERSION}\n")
    return env


def _pid_file() -> Path:
    return home() / "superset.pid"


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    env = setup()  # also when running: re-imports the bundle, so `make superset` applies edits
    if _pid_file().exists() and _healthy(url):
        return url
    with open(home() / "superset.log", "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            _gunicorn_cmd("127.0.0.1", port), env=env, stdout=log, stderr=log,
            start_new_session=True,
        )
    _pid_file().write_text(f"{proc.pid}\n")
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"Superset exited with code {proc.returncode}; see {home() / 'superset.log'}")
        if _healthy(url):
            return url
        time.sleep(1)
    stop()
    raise SetupError(f"Superset did not answer on {url} within 180 s; see {home() / 'superset.log'}")


def _gunicorn_cmd(host: str, port: int) -> list[str]:
    return [str(Path(sys.executable).with_name("gunicorn")), "--workers", "1", "--threads", "8",
            "--timeout", "120", "--bind", f"{host}:{port}", "superset.app:create_app()"]


def serve(host: str, port: int) -> None:
    """Set up, then become the web server (PID 1 in a container gets the signals)."""
    env = setup(keep_user_changes=True)
    cmd = _gunicorn_cmd(host, port)
    os.execve(cmd[0], cmd, env)


def stop() -> bool:
    pid_file = _pid_file()
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    for _ in range(100):
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.killpg(pid, signal.SIGKILL)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superset/manage.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bundle", help="zip the dashboard sources")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--uri", help="warehouse SQLAlchemy URI to put in the bundle")
    sub.add_parser("setup", help="metadata db, admin, import")
    s = sub.add_parser("start", help="setup and serve in the background")
    s.add_argument("--port", type=int, default=int(os.environ.get("SUPERSET_PORT", "8088")))
    sub.add_parser("stop", help="stop the server started by `start`")
    sv = sub.add_parser("serve", help="setup and serve in the foreground")
    sv.add_argument("--host", default="0.0.0.0")
    sv.add_argument("--port", type=int, default=int(os.environ.get("SUPERSET_PORT", "8088")))
    shot = sub.add_parser("screenshot", help="PNG of the dashboard (needs chromium + chromedriver)")
    shot.add_argument("--out", type=Path, required=True)
    shot.add_argument("--port", type=int, default=int(os.environ.get("SUPERSET_PORT", "8088")))
    args = parser.parse_args(argv)
    try:
        if args.command == "bundle":
            print(build_bundle(args.out, args.uri))
        elif args.command == "setup":
            setup()
        elif args.command == "start":
            url = start(args.port)
            password = _generated("admin_password", "SUPERSET_ADMIN_PASSWORD")
            where = ("SUPERSET_ADMIN_PASSWORD" if os.environ.get("SUPERSET_ADMIN_PASSWORD")
                     else home() / "admin_password")
            print(f"Superset: {url}/superset/dashboard/flight-delays/\n"
                  f"login: {ADMIN} / {password}   (from {where})\n"
                  "stop it with `make superset-stop`")
        elif args.command == "serve":
            serve(args.host, args.port)
        elif args.command == "stop":
            print("stopped" if stop() else "not running", file=sys.stderr)
        elif args.command == "screenshot":
            from screenshot import screenshot

            password = _generated("admin_password", "SUPERSET_ADMIN_PASSWORD")
            screenshot(f"http://127.0.0.1:{args.port}", ADMIN, password, args.out)
            print(args.out)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
