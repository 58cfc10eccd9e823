"""No secrets in the repository: detect-secrets over every git-tracked file.

A finding fails the test unless `.secrets.baseline` lists it, and the baseline may only list
files under tests/ (fake credentials for throw-away services). For a false positive in code,
put `# pragma: allowlist secret` on that line, which detect-secrets understands everywhere.
Refresh the baseline with
    detect-secrets scan --baseline .secrets.baseline $(git ls-files tests)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from detect_secrets import SecretsCollection
from detect_secrets.core import baseline
from detect_secrets.settings import transient_settings

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / ".secrets.baseline"


def _scan(files: list[str]) -> dict[tuple[str, str], list]:
    config = baseline.load_from_file(str(BASELINE))
    found = SecretsCollection(root=str(REPO))
    with transient_settings({"plugins_used": config["plugins_used"],
                             "filters_used": config["filters_used"]}):
        for name in files:
            found.scan_file(name)
    out: dict[tuple[str, str], list] = {}
    for filename, secret in found:
        out.setdefault((filename, secret.secret_hash), []).append(secret)
    return out


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return [f for f in listed if f and (REPO / f).is_file()]


def test_no_secrets_in_tracked_files():
    allowed = {(f, s["hashed_secret"])
               for f, items in json.loads(BASELINE.read_text())["results"].items() for s in items}
    findings = _scan(_tracked_files())
    new = sorted(f"{f}:{s.line_number}: {s.type}" for (f, h), secrets in findings.items()
                 if (f, h) not in allowed for s in secrets)
    assert not new, "possible secrets (move them to .env / the environment, or mark a false " \
                    "positive with `# pragma: allowlist secret`):\n" + "\n".join(new)


def test_baseline_only_allows_test_fixtures():
    results = json.loads(BASELINE.read_text())["results"]
    assert all(name.startswith("tests/") for name in results), sorted(results)


def test_the_scan_catches_a_planted_secret(tmp_path, monkeypatch):
    planted = REPO / "tests" / f"_planted_{tmp_path.name}.py"
    key = "AKIA" + "Q3EGRIOSBXTX6A7P"  # split so this file itself stays clean
    planted.write_text(f'aws_access_key_id = "{key}"\npassword = "hunter2-{tmp_path.name}"\n')
    try:
        rel = str(planted.relative_to(REPO))
        types = {s.type for (f, _), secrets in _scan([rel]).items() for s in secrets}
    finally:
        planted.unlink()
    assert {"AWS Access Key", "Secret Keyword"} <= types
