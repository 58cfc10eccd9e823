"""Write `.env` from `.env.example` with a fresh random value for every `change-me`.

    python docker/new_env.py [--out PATH]   # refuses to overwrite an existing file
Standard library only, so it runs before any virtualenv exists.
"""

import base64
import os
import secrets
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fresh_value(name: str) -> str:
    if name == "AIRFLOW_FERNET_KEY":  # Fernet wants 32 url-safe base64-encoded bytes
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(24)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[1]) if argv[:1] == ["--out"] and len(argv) == 2 else REPO / ".env"
    if target.exists():
        print(f"error: {target} exists; delete it first to generate a new one", file=sys.stderr)
        return 2
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and value == "change-me":
            line = f"{name}={fresh_value(name)}"
        lines.append(line)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"wrote {target} (mode 600)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
