"""Superset for the lakehouse, run from its own virtualenv (`.venv-superset/bin/python`).

    python superset/manage.py bundle --out bundle.zip   zip superset/bundle/ (a Superset export)
    python superset/manage.py export                    this Superset's dashboards -> superset/bundle/
    python superset/manage.py setup [--force]           metadata db, admin user, import on first start
    python superset/manage.py start [--force]           setup, then serve in the background
    python superset/manage.py stop                      stop what `start` started (process group)
    python superset/manage.py serve [--force]           setup, then serve in the foreground (containers)
    python superset/manage.py screenshot --out PNG [--slug S]   a dashboard in headless Chromium

State lives in SUPERSET_HOME (default `.local/superset`, git-ignored): the SQLite metadata, a
generated SECRET_KEY (unless SUPERSET_SECRET_KEY is set) and the generated admin password
(unless SUPERSET_ADMIN_PASSWORD is set), used only when the admin user is created. The bundle is
imported when its dashboards are not in the metadata yet, or with --force / SUPERSET_REIMPORT=1.
The dashboards read the warehouse through the
read-only login role LAKEHOUSE_SUPERSET_DB_USER (default `lakehouse_superset`; create it with
`python -m lakehouse.roles apply --superset-login`) at PGHOST/PGPORT/PGDATABASE, or at
SUPERSET_WAREHOUSE_URI when set. Errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # devtools.background (standard library only) from this venv too

from devtools.background import Background, BackgroundError, http_ok

BUNDLE_SRC = HERE / "bundle"
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
# superset/bundle/ is a dashboard export exactly as Superset writes it (`superset
# export-dashboards`, or the dashboard's "Download > Export YAML" in the UI), unzipped. The one
# thing changed on the way in and out is the warehouse URI: the committed file holds a
# placeholder, `bundle` writes the configured one into the zip it imports, `export` puts the
# placeholder back, so no host, port or user of anyone's machine is committed.

PLACEHOLDER_URI = "postgresql+psycopg2://lakehouse_superset@localhost:5432/lakehouse"
BUNDLE_ROOT = "lakehouse_dashboards"


def bundle_files() -> dict[str, bytes]:
    """The bundle's files by their path inside it (metadata.yaml, databases/..., ...)."""
    if not (BUNDLE_SRC / "metadata.yaml").exists():
        raise SetupError(f"{BUNDLE_SRC}/metadata.yaml is missing: superset/bundle/ must be an "
                         "unzipped dashboard export (see superset/README.md)")
    return {p.relative_to(BUNDLE_SRC).as_posix(): p.read_bytes()
            for p in sorted(BUNDLE_SRC.rglob("*.yaml"))}


def _with_uri(name: str, content: bytes, uri: str) -> bytes:
    if not name.startswith("databases/"):
        return content
    database = yaml.safe_load(content)
    database["sqlalchemy_uri"] = uri
    return yaml.safe_dump(database, sort_keys=False).encode()


def build_bundle(out: Path, uri: str | None = None) -> Path:
    """Zip superset/bundle/ for `superset import-dashboards`, with the warehouse URI filled in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in bundle_files().items():
            zf.writestr(f"{BUNDLE_ROOT}/{name}", _with_uri(name, content, uri) if uri else content)
    out.write_bytes(buf.getvalue())
    return out


def export_bundle(dest: Path = BUNDLE_SRC) -> list[str]:
    """Export every dashboard of this Superset into `dest` (replacing its YAML files)."""
    env = superset_env()
    with tempfile.TemporaryDirectory(prefix="superset-export-") as tmp:
        zpath = Path(tmp) / "export.zip"
        _superset("export-dashboards", "-f", str(zpath), env=env)
        with zipfile.ZipFile(zpath) as zf:
            files = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist() if n.endswith(".yaml")}
    for old in dest.rglob("*.yaml"):
        old.unlink()
    for name, content in sorted(files.items()):
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_with_uri(name, content, PLACEHOLDER_URI))
    return sorted(files)


# --- set-up and serving ----------------------------------------------------------------------

def _superset(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("superset")
    proc = subprocess.run([str(exe), *args], check=False, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SetupError(f"`superset {args[0]}` failed: {' | '.join(tail)}")
    return proc


# The import, in one Flask app context. `superset import-dashboards` would create missing
# objects but never overwrite the database, datasets or charts a dashboard uses, so their own
# importers run first with overwrite; then each chart's saved query context (what
# `GET /api/v1/chart/{id}/data/`, reports and cache warm-up run) is pointed at the dataset id
# this Superset assigned, which differs from the exporting one's. Without --force it imports
# only when the bundle's dashboards are not there yet: a restart never undoes edits made in the UI.
_IMPORT = """
import json, sys, zipfile
from superset.app import create_app
app = create_app()
with app.app_context():
    import yaml
    from flask import g
    from superset import security_manager
    from superset.commands.chart.importers.v1 import ImportChartsCommand
    from superset.commands.dashboard.importers.v1 import ImportDashboardsCommand
    from superset.commands.database.importers.v1 import ImportDatabasesCommand
    from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
    from superset.commands.importers.v1.utils import get_contents_from_bundle
    from superset.extensions import db
    from superset.models.dashboard import Dashboard
    from superset.models.slice import Slice
    g.user = security_manager.find_user(username=sys.argv[2])
    force = sys.argv[3] == "1"
    with zipfile.ZipFile(sys.argv[1]) as zf:
        contents = get_contents_from_bundle(zf)
    wanted = {str(yaml.safe_load(v)["uuid"]) for k, v in contents.items() if k.startswith("dashboards/")}
    present = {str(d.uuid) for d in db.session.query(Dashboard)}
    if wanted <= present and not force:
        print("kept")
        sys.exit(0)
    parts = dict(contents)
    # each importer checks `type` against its own model: drop it, keep the version
    parts["metadata.yaml"] = "version: 1.0.0\\ntimestamp: '2026-01-01T00:00:00+00:00'\\n"
    for command in (ImportDatabasesCommand, ImportDatasetsCommand, ImportChartsCommand):
        command(dict(parts), overwrite=True).run()
    ImportDashboardsCommand(dict(contents), overwrite=True).run()
    # Superset 6.1 maps a native filter's dataset and excluded charts to this Superset's ids
    # on import, but not `chartsInScope` (which the dashboard uses to pick the charts a filter
    # narrows): recompute it from the filter's scope and the imported layout.
    for d in [d for d in db.session.query(Dashboard) if str(d.uuid) in wanted]:
        meta, position = json.loads(d.json_metadata or "{}"), json.loads(d.position_json or "{}")
        charts = [v for v in position.values() if isinstance(v, dict) and v.get("type") == "CHART"]
        for flt in meta.get("native_filter_configuration", []):
            scope = flt.get("scope", {"rootPath": ["ROOT_ID"], "excluded": []})
            flt["chartsInScope"] = sorted(
                c["meta"]["chartId"] for c in charts
                if c["meta"]["chartId"] not in scope.get("excluded", [])
                and set(scope.get("rootPath", [])) & set(c.get("parents", []) + [c["id"]]))
        d.json_metadata = json.dumps(meta)
    for s in db.session.query(Slice):
        if not s.query_context:
            continue
        qc = json.loads(s.query_context)
        qc["datasource"] = {"id": s.datasource_id, "type": s.datasource_type}
        qc["form_data"]["datasource"] = f"{s.datasource_id}__{s.datasource_type}"
        qc["form_data"]["slice_id"] = s.id
        s.query_context = json.dumps(qc)
    db.session.commit()
    print("imported")
"""


# In SUPERSET_HOME (a volume in compose): written once the bundle is imported, so later starts
# skip even building it.
IMPORT_MARKER = "bundle-imported"


def import_bundle(env: dict[str, str], force: bool) -> bool:
    """Import superset/bundle/ on first start (no marker in SUPERSET_HOME and none of its
    dashboards in the metadata yet), or when `force`; True if it did."""
    marker = home() / IMPORT_MARKER
    if marker.exists() and not force:
        return False
    bundle = build_bundle(home() / "bundle.zip", uri=warehouse_uri())
    proc = subprocess.run([sys.executable, "-c", _IMPORT, str(bundle), ADMIN, "1" if force else "0"],
                          check=False, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise SetupError(f"importing superset/bundle failed: {' | '.join(tail)}")
    marker.write_text(yaml.safe_load(bundle_files()["metadata.yaml"])["version"] + "\n")
    return proc.stdout.strip().splitlines()[-1] == "imported"


def _force_from_env() -> bool:
    return os.environ.get("SUPERSET_REIMPORT", "") not in ("", "0", "false", "no")


def setup(force: bool = False, keep_user_changes: bool = True) -> dict[str, str]:
    """Metadata schema, admin user (created once: its password is never reset here), roles and
    permissions, and the bundle on first start only, so what users change in the UI survives
    restarts. `force`, SUPERSET_REIMPORT=1 or keep_user_changes=False import it again over
    those changes."""
    env = superset_env()
    password = _generated("admin_password", "SUPERSET_ADMIN_PASSWORD")
    warehouse_uri()  # fail early, before minutes of set-up, when the warehouse is not configured
    _superset("db", "upgrade", env=env)
    _superset("fab", "create-admin", "--username", ADMIN, "--firstname", "Lakehouse",
              "--lastname", "Admin", "--email", "admin@localhost", "--password", password, env=env)
    _superset("init", env=env)
    imported = import_bundle(env, force or not keep_user_changes or _force_from_env())
    print("bundle imported" if imported else
          "bundle already imported: dashboards kept as they are (--force or "
          "SUPERSET_REIMPORT=1 imports the bundle again, overwriting edits made in the UI)",
          file=sys.stderr)
    return env


def _server() -> Background:
    return Background("Superset", home() / "superset.pid", home() / "superset.log")


def start(port: int, force: bool = False) -> str:
    url = f"http://127.0.0.1:{port}"
    env = setup(force)
    try:
        _server().start(_gunicorn_cmd("127.0.0.1", port), lambda: http_ok(f"{url}/health"), env)
    except BackgroundError as exc:
        raise SetupError(str(exc)) from None
    return url


def _gunicorn_cmd(host: str, port: int) -> list[str]:
    return [str(Path(sys.executable).with_name("gunicorn")), "--workers", "1", "--threads", "8",
            "--timeout", "120", "--bind", f"{host}:{port}", "superset.app:create_app()"]


def serve(host: str, port: int, force: bool = False) -> None:
    """Set up, then become the web server (PID 1 in a container gets the signals)."""
    env = setup(force)
    cmd = _gunicorn_cmd(host, port)
    os.execve(cmd[0], cmd, env)


def stop() -> bool:
    return _server().stop(timeout=10.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="superset/manage.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    port = int(os.environ.get("SUPERSET_PORT", "8088"))
    force_help = ("re-import superset/bundle/ although its dashboards exist (overwrites edits "
                  "made in the UI; SUPERSET_REIMPORT=1 does the same)")
    b = sub.add_parser("bundle", help="zip superset/bundle/ for import")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--uri", help="warehouse SQLAlchemy URI to put in the bundle")
    e = sub.add_parser("export", help="export this Superset's dashboards into superset/bundle/")
    e.add_argument("--dest", type=Path, default=BUNDLE_SRC)
    st = sub.add_parser("setup", help="metadata db, admin, import on first start")
    st.add_argument("--force", action="store_true", help=force_help)
    s = sub.add_parser("start", help="setup and serve in the background")
    s.add_argument("--port", type=int, default=port)
    s.add_argument("--force", action="store_true", help=force_help)
    sub.add_parser("stop", help="stop the server started by `start`")
    sv = sub.add_parser("serve", help="setup and serve in the foreground")
    sv.add_argument("--host", default="0.0.0.0")
    sv.add_argument("--port", type=int, default=port)
    sv.add_argument("--force", action="store_true", help=force_help)
    shot = sub.add_parser("screenshot", help="PNG of a dashboard (needs chromium + chromedriver)")
    shot.add_argument("--out", type=Path, required=True)
    shot.add_argument("--port", type=int, default=port)
    shot.add_argument("--slug", default="flight-delays")
    args = parser.parse_args(argv)
    try:
        if args.command == "bundle":
            print(build_bundle(args.out, args.uri))
        elif args.command == "export":
            names = export_bundle(args.dest)
            print(f"exported {len(names)} files into {args.dest}; review with `git diff`")
        elif args.command == "setup":
            setup(args.force)
        elif args.command == "start":
            url = start(args.port, args.force)
            where = ("SUPERSET_ADMIN_PASSWORD" if os.environ.get("SUPERSET_ADMIN_PASSWORD")
                     else home() / "admin_password")
            print(f"Superset: {url}/superset/dashboard/flight-delays/ (national), "
                  f"{url}/superset/dashboard/airport/ (one airport)\n"
                  f"login: {ADMIN}, password in {where} (set when the admin was created)\n"
                  "stop it with `make superset-stop`")
        elif args.command == "serve":
            serve(args.host, args.port, args.force)
        elif args.command == "stop":
            print("stopped" if stop() else "not running", file=sys.stderr)
        elif args.command == "screenshot":
            from screenshot import screenshot

            password = _generated("admin_password", "SUPERSET_ADMIN_PASSWORD")
            screenshot(f"http://127.0.0.1:{args.port}", ADMIN, password, args.out, slug=args.slug)
            print(args.out)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
