"""A logged-in session on Superset's REST API (the tests and bench/bench_dashboard.py use it):
the JWT from /security/login, the CSRF token Superset wants on every write, and the Referer its
CSRF check compares."""

from __future__ import annotations

import requests


def api_session(url: str, password: str, username: str = "admin") -> requests.Session:
    s = requests.Session()
    login = s.post(f"{url}/api/v1/security/login", json={
        "username": username, "password": password, "provider": "db", "refresh": False,
    }, timeout=30)
    login.raise_for_status()
    s.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    s.headers["X-CSRFToken"] = s.get(f"{url}/api/v1/security/csrf_token/", timeout=30).json()["result"]
    s.headers["Referer"] = url
    return s
