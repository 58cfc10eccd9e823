"""The one way the developer harness runs a server in the background (the dbt docs server, the
local Airflow, Superset): in a session of its own, output appended to a log file, its pid in a
pid file, started when a readiness probe says so, stopped by signalling its whole process group.

Standard library only (psutil when it is installed), so Superset's own virtualenv imports it too.

    python -m devtools.background start --pid P --log L [--ready-url URL] -- CMD ARGS...
    python -m devtools.background stop --pid P
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class BackgroundError(RuntimeError):
    """The server exited or never became ready; the message names its log."""


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when `url` answers 200 (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class Background:
    name: str  # for messages: "Superset", "dbt docs", ...
    pid_file: Path
    log_file: Path

    def running_pid(self) -> int | None:
        """The pid in the pid file when that process group still exists, else None."""
        try:
            pid = int(self.pid_file.read_text().split()[0])
            os.killpg(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def note(self) -> str:
        """What `start` wrote after the pid (e.g. the port), '' if nothing."""
        try:
            return self.pid_file.read_text().split(maxsplit=1)[1].strip()
        except (OSError, IndexError):
            return ""

    def start(self, cmd: Sequence[str], ready: Callable[[], bool], env: Mapping[str, str] | None = None,
              timeout: float = 180.0, cwd: Path | None = None, note: str = "") -> int:
        """Start `cmd` unless it already runs and is ready; returns its pid once `ready()`.
        `note` is kept in the pid file after the pid (`note()` reads it back).

        A server that exits or is not ready within `timeout` seconds is stopped and raises
        BackgroundError naming the log."""
        pid = self.running_pid()
        if pid is not None and ready():
            return pid
        if pid is not None:
            self.stop()
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(list(cmd), env=None if env is None else dict(env), cwd=cwd,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        self.pid_file.write_text(f"{proc.pid} {note}".strip() + "\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise BackgroundError(f"{self.name} exited with code {proc.returncode}; see "
                                      f"{self.log_file}")
            if ready():
                return proc.pid
            time.sleep(0.5)
        self.stop()
        raise BackgroundError(f"{self.name} was not ready within {timeout:.0f} s; see {self.log_file}")

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM to the server's process group (and, with psutil, to descendants that left
        it), SIGKILL after `timeout`; False if none ran."""
        pid = self.running_pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        strays = _descendants(pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        for proc in strays:
            with contextlib.suppress(Exception):
                proc.terminate()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (_group_alive(pid) or any(_alive(p) for p in strays)):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        for proc in strays:
            with contextlib.suppress(Exception):
                proc.kill()
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _descendants(pid: int) -> list:
    """The server's descendant processes (psutil objects), [] without psutil."""
    try:
        import psutil
    except ImportError:
        return []
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(proc) -> bool:
    import psutil  # only called on what _descendants found

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.background", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start CMD in the background (a no-op if it runs)")
    stop = sub.add_parser("stop", help="stop it")
    for p in (start, stop):
        p.add_argument("--pid", type=Path, required=True, help="pid file")
        p.add_argument("--name", default="the server")
    start.add_argument("--log", type=Path, required=True, help="log file (appended)")
    start.add_argument("--ready-url", help="ready when this URL answers 200 (default: at once)")
    start.add_argument("--timeout", type=float, default=120.0)
    start.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    args = parser.parse_args(argv)
    if args.command == "stop":
        server = Background(args.name, args.pid, Path(os.devnull))
        print(f"{args.name} stopped" if server.stop() else f"{args.name} was not running",
              file=sys.stderr)
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        parser.error("give the command after --")
    server = Background(args.name, args.pid, args.log)
    try:
        pid = server.start(cmd, lambda: http_ok(args.ready_url) if args.ready_url else True,
                           timeout=args.timeout)
    except BackgroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.name} runs (pid {pid}, log {args.log})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
