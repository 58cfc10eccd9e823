"""A local PostgreSQL cluster for users (and test runs) that have no warehouse of their own.

`python -m lakehouse.localdb start|stop|status|env [--dir DIR]`

The cluster lives in a git-ignored folder (default `.local/pg`), listens on 127.0.0.1 on a
free port chosen once and remembered in the folder, and trusts local connections (it is a
developer sandbox bound to loopback, so no password is stored anywhere). `start` is
idempotent: it initialises the folder on first use and does nothing when the server already
runs. PostgreSQL refuses to run as root, so as root every server command runs as the
`postgres` OS user. Only the standard library is used so this works before the venv exists.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DIR = Path(os.environ.get("LAKEHOUSE_PG_DIR", ".local/pg"))
DEFAULT_USER = "lakehouse"
DEFAULT_DB = "lakehouse"
FIRST_PORT = 55432

# Settings that make bulk loads fast on a throw-away developer cluster. wal_level=minimal lets
# COPY into a table created in the same transaction skip WAL entirely (the loader relies on it).
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "100",
    "shared_buffers": "'512MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'512MB'",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "'4GB'",
    "synchronous_commit": "off",
    "checkpoint_timeout": "'15min'",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class LocalDbError(RuntimeError):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Cluster:
    data_dir: Path
    port: int
    user: str = DEFAULT_USER
    database: str = DEFAULT_DB

    def env(self) -> dict[str, str]:
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": self.database,
        }


def find_pg_bin() -> Path:
    """Directory holding pg_ctl/initdb/postgres, or a clear error saying what to do."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for name in ("pg_ctl", "initdb", "postgres"):
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    for cand in candidates:
        if all((cand / exe).exists() for exe in ("pg_ctl", "initdb", "postgres")):
            return cand
    raise LocalDbError(
        "no PostgreSQL server binaries found (initdb, pg_ctl, postgres): install them "
        "(Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql@15`), "
        "set PG_BIN to their folder, or point the project at an existing server by exporting "
        "PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE"
    )


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _as_server_user(cmd: list[str]) -> list[str]:
    if _is_root():
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalDbError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pick_port(start: int = FIRST_PORT) -> int:
    for port in range(start, start + 500):
        if port_is_free(port):
            return port
    raise LocalDbError(f"no free TCP port in {start}..{start + 499} for the local PostgreSQL")


def _cluster(base: Path) -> Cluster:
    port_file = base / "port"
    if not port_file.exists():
        raise LocalDbError(f"no local cluster in {base}: run `make db-start` first")
    return Cluster(data_dir=base / "data", port=int(port_file.read_text().strip()))


def is_running(cluster: Cluster) -> bool:
    bindir = find_pg_bin()
    proc = subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "status", "-D", str(cluster.data_dir)]),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0


def _init(base: Path, port: int | None) -> Cluster:
    bindir = find_pg_bin()
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    port = port or _pick_port()
    data_dir = base / "data"
    if _is_root():
        # The server user must be able to reach and own its folder.
        shutil.chown(base, user="postgres", group="postgres")
        for parent in base.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise LocalDbError(
                    f"{parent} is not traversable by the postgres OS user; "
                    "use LAKEHOUSE_PG_DIR to put the cluster elsewhere"
                )
    _run(
        [
            str(bindir / "initdb"),
            "-D", str(data_dir),
            "-U", DEFAULT_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        "initdb",
    )
    conf = "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
    conf += f"\nport = {port}\nunix_socket_directories = '{base}'\n"
    auto_conf = data_dir / "postgresql.auto.conf"
    with open(auto_conf, "a", encoding="utf-8") as fh:
        fh.write(conf)
    (base / "port").write_text(f"{port}\n")
    return Cluster(data_dir=data_dir, port=port)


def start(base: Path = DEFAULT_DIR, port: int | None = None) -> Cluster:
    """Start (initialising on first use) the cluster in `base`; a no-op if it already runs."""
    base = Path(base)
    bindir = find_pg_bin()
    cluster = _cluster(base) if (base / "port").exists() else _init(base, port)
    if not is_running(cluster):
        if not port_is_free(cluster.port):
            raise LocalDbError(
                f"port {cluster.port} (remembered in {base / 'port'}) is taken by another "
                "program: stop it, or delete that folder to start over on a new port"
            )
        log = base.resolve() / "server.log"
        _run(
            [str(bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(cluster.data_dir),
             "-l", str(log)],
            f"starting PostgreSQL (log: {log})",
        )
    _ensure_database(cluster)
    return cluster


def _ensure_database(cluster: Cluster) -> None:
    bindir = find_pg_bin()
    psql = shutil.which("psql") or str(bindir / "psql")
    env = {**os.environ, **cluster.env(), "PGDATABASE": "postgres"}
    for _ in range(50):
        probe = subprocess.run(
            [psql, "-XAtqc", "select 1 from pg_database where datname = 'lakehouse'"],
            capture_output=True, text=True, env=env, check=False,
        )
        if probe.returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise LocalDbError(f"local PostgreSQL on port {cluster.port} does not answer: "
                           f"{probe.stderr.strip()}")
    if probe.stdout.strip() != "1":
        subprocess.run([psql, "-Xqc", f'create database "{cluster.database}"'],
                       check=True, env=env, capture_output=True)


def stop(base: Path = DEFAULT_DIR) -> bool:
    """Stop the cluster; returns False when it was not running."""
    base = Path(base)
    if not (base / "port").exists():
        return False
    cluster = _cluster(base)
    if not is_running(cluster):
        return False
    _run([str(find_pg_bin() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(cluster.data_dir)],
         "stopping PostgreSQL")
    return True


def destroy(base: Path) -> None:
    """Stop and delete a cluster folder (used by test runs for their throw-away cluster)."""
    stop(base)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.localdb", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster folder (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = start(args.dir)
            print(f"local PostgreSQL running on 127.0.0.1:{cluster.port} (data: {cluster.data_dir}); "
                  "to use it from your shell: eval \"$(make -s db-env)\"", file=sys.stderr)
        elif args.command == "stop":
            print("stopped" if stop(args.dir) else "not running", file=sys.stderr)
        elif args.command == "status":
            cluster = _cluster(args.dir)
            running = is_running(cluster)
            print(f"{'running' if running else 'stopped'} on 127.0.0.1:{cluster.port}")
            return 0 if running else 3
        elif args.command == "env":
            for key, value in _cluster(args.dir).env().items():
                print(f"export {key}={value}")
    except LocalDbError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
