"""Throwaway local services for scale-out on one machine (tests, trying the README recipe): a PostgreSQL
cluster for the Optuna storage and an `mlflow server` for tracking. Both bind 127.0.0.1 by default.

    with start_postgres(tmp) as pg, start_mlflow_server(tmp) as ml:
        worker("quick", storage=pg.url, tracking_uri=ml.url)

PostgreSQL refuses to run as root: as root, the cluster is created and run as the `postgres` system user
(Debian's `postgresql` package creates it) in a directory it owns.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
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
    _run([*as_user, postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "postgres.log"),
          "-w", "-t", "60", "start"], "pg_ctl start", log=base / "postgres.log")
    return PostgresServer(data, host, port, user, password, as_user)


@dataclass
class MlflowServer:
    proc: subprocess.Popen
    host: str
    port: int
    root: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
    log = open(root / "mlflow-server.log", "ab")  # noqa: SIM115 (the server writes to it until stopped)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    log.close()
    server = MlflowServer(proc, host, port, root)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"mlflow server exited with {proc.returncode}; see {root / 'mlflow-server.log'}")
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.5)
    server.stop()
    raise ServiceError(f"mlflow server did not answer on {server.url} within {timeout_s:.0f} s; "
                       f"see {root / 'mlflow-server.log'}")


def _run(cmd: list[str], what: str, log: Path | None = None) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
        raise ServiceError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]} {tail}")
