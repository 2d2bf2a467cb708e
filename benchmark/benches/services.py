"""Throwaway local services for scale-out on one machine (tests, trying the README recipe): a PostgreSQL
cluster for the Optuna storage and an `mlflow server` for tracking. Both bind 127.0.0.1 by default.

    with start_postgres(tmp) as pg, start_mlflow_server(tmp) as ml:
        worker("quick", storage=pg.url, tracking_uri=ml.url)

PostgreSQL refuses to run as root: as root, the cluster is created and run as the `postgres` system user
(Debian's `postgresql` package creates it) in a directory it owns.

Outages are made with `halt()` and `start()` (same port, same data): the outage tests and the soak
(`benchmark/benches/soak.py`) stop a service mid-study and bring it back; `stop()` ends it for good.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def postgres_bin(name: str) -> str:
    """`initdb`, `pg_ctl`, ... from PATH or Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                                                   reverse=True)), None)
    if found is None:
        raise ServiceError(f"PostgreSQL binary {name!r} not found on PATH or in /usr/lib/postgresql/*/bin; "
                           f"install it with `apt-get install postgresql`")
    return found


@dataclass
class PostgresServer:
    data_dir: Path
    host: str
    port: int
    user: str
    password: str
    _as_user: list[str] = field(default_factory=list)
    options: str = ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname="postgres", connect_timeout=5)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)

    def halt(self, mode: str = "fast") -> None:
        """Shut the server down, keeping its data (`fast`: as for an upgrade, open sessions are cut)."""
        _run([*self._as_user, postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "-t", "60",
              "stop"], "pg_ctl stop")

    def start(self) -> None:
        """Start the halted server again on the same port, with the same data."""
        log = self.data_dir.parent / "postgres.log"
        _run([*self._as_user, postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-o", self.options, "-l",
              str(log), "-w", "-t", "60", "start"], "pg_ctl start", log=log)

    def stop(self) -> None:
        subprocess.run([*self._as_user, postgres_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                        "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_postgres(host: str = "127.0.0.1", port: int | None = None, user: str = "diffres",
                   password: str | None = None) -> PostgresServer:
    """initdb a new cluster in a temporary directory and start it (password auth on TCP, no socket)."""
    port = port or free_port(host)
    password = password or secrets.token_hex(8)
    base = Path(tempfile.mkdtemp(prefix="diffres-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    _run([*as_user, postgres_bin("initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
          "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"], "initdb")
    pwfile.unlink()
    options = f"-h {host} -p {port} -k {base} -c fsync=off -c max_connections=100"
    server = PostgresServer(data, host, port, user, password, as_user, options)
    server.start()
    return server


@dataclass
class MlflowServer:
    proc: subprocess.Popen
    host: str
    port: int
    root: Path
    cmd: list[str] = field(default_factory=list)
    timeout_s: float = 120.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def halt(self) -> None:
        """Stop the server, keeping its store and artefacts (`start` brings it back on the same port)."""
        self.stop()

    def start(self) -> None:
        """Start the halted server again (same port, same store); waits until /health answers."""
        if self.proc.poll() is None:
            raise ServiceError(f"mlflow server on {self.url} is still running")
        self.proc = _launch_mlflow(self.cmd, self.root)
        _wait_healthy(self)

    def stop(self) -> None:
        """Terminate the server and its workers (it runs in its own process group)."""
        if self.proc.poll() is None:
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait()
        _signal_group(self.proc, signal.SIGKILL)  # a worker process left behind by its parent

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mlflow_server(root: Path, host: str = "127.0.0.1", port: int | None = None,
                        backend_store_uri: str | None = None, timeout_s: float = 120.0) -> MlflowServer:
    """`mlflow server` with a SQLite store and served artifacts under `root`; waits until /health answers."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    backend_store_uri = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
    mlflow_exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(mlflow_exe) if mlflow_exe.exists() else "mlflow", "server", "--host", host, "--port", str(port),
           "--backend-store-uri", backend_store_uri, "--artifacts-destination", str(root / "artifacts"),
           "--workers", "1"]
    server = MlflowServer(_launch_mlflow(cmd, root), host, port, root, cmd, timeout_s)
    _wait_healthy(server)
    return server


def _launch_mlflow(cmd: list[str], root: Path) -> subprocess.Popen:
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    with open(root / "mlflow-server.log", "ab") as log:  # the server keeps its own handle
        # its own process group: stop() ends the server's worker processes with it
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
                                start_new_session=True)


def _wait_healthy(server: MlflowServer) -> None:
    root, proc = server.root, server.proc
    deadline = time.monotonic() + server.timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"mlflow server exited with {proc.returncode}; see {root / 'mlflow-server.log'}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise ServiceError(f"mlflow server did not answer on {server.url} within {server.timeout_s:.0f} s; "
                       f"see {root / 'mlflow-server.log'}")


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise ServiceError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]} {tail}")
