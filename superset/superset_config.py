"""Superset configuration for the lakehouse dashboards (local `make superset` and compose).

Nothing secret lives here: the SECRET_KEY comes from SUPERSET_SECRET_KEY or from a file that
`superset/manage.py` generates once in the git-ignored SUPERSET_HOME (`.local/superset`), and
the warehouse password from LAKEHOUSE_SUPERSET_PASSWORD at query time, so it is never stored
in Superset's metadata database either.
"""

import os
from pathlib import Path

SUPERSET_HOME = Path(os.environ.get("SUPERSET_HOME", ".local/superset")).resolve()
DATA_DIR = str(SUPERSET_HOME)


def _secret_key() -> str:
    if os.environ.get("SUPERSET_SECRET_KEY"):
        return os.environ["SUPERSET_SECRET_KEY"]
    key_file = SUPERSET_HOME / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    raise RuntimeError(
        f"no Superset SECRET_KEY: set SUPERSET_SECRET_KEY or run `make superset`, which "
        f"generates {key_file}"
    )


SECRET_KEY = _secret_key()

# Metadata: SQLite for a single local user; compose points this at its Postgres.
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_METADATA_URI", f"sqlite:///{SUPERSET_HOME / 'superset.db'}?check_same_thread=false"
)


def lookup_password(url):
    """The warehouse login's password, read from the environment whenever Superset connects."""
    if url.username == os.environ.get("LAKEHOUSE_SUPERSET_DB_USER", "lakehouse_superset"):
        return os.environ.get("LAKEHOUSE_SUPERSET_PASSWORD") or None
    return url.password


SQLALCHEMY_CUSTOM_PASSWORD_STORE = lookup_password

# The dashboard's warehouse runs on this machine or the compose network.
PREVENT_UNSAFE_DB_CONNECTIONS = False

# Local HTTP on 127.0.0.1: no HTTPS redirects or HSTS, and no CSP warning at every start.
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False

# No Mapbox token: deck.gl maps draw on OpenStreetMap tiles (when the browser can reach them).
DECKGL_BASE_MAP = [
    ["tile://https://tile.openstreetmap.org/{z}/{x}/{y}.png", "OpenStreetMap"],
]

FEATURE_FLAGS = {
    "DASHBOARD_NATIVE_FILTERS": True,
}

# One process, no Celery/Redis: cache in memory of the web server.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = CACHE_CONFIG

# No usage pixel to Superset's analytics host (unreachable offline, and nobody asked for it).
SCARF_ANALYTICS = False
