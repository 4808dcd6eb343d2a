"""The managed services of the stack, on loopback: PostgreSQL for RDS, RabbitMQ for the broker container.

Both come from Debian packages (installed when missing) and run without systemd, as children of
the runner with their data in the run directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from embedded_aws.processes import Proc, Processes

# What the runtime needs from Debian (marker file globs); the launcher installs the missing ones as root.
APT_PACKAGES = {"postgresql": "/usr/lib/postgresql/*/bin/initdb", "rabbitmq-server": "/usr/sbin/rabbitmqctl"}
RABBITMQ_BIN = "/usr/lib/rabbitmq/bin"


def ensure_apt_packages(packages: dict[str, str]) -> list[str]:
    """apt-get install the packages whose marker file (a glob) is missing; returns what was installed."""
    missing = [name for name, marker in packages.items() if not glob.glob(marker)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # policy-rc.d keeps Debian from starting the services it installs (no systemd here anyway).
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, capture_output=True)
    return missing


@dataclass
class DatabaseUrl:
    user: str
    password: str
    host: str
    port: int
    database: str


def parse_db_url(url: str) -> DatabaseUrl:
    """postgresql+psycopg2://user:pass@host:port/db (also with a `db+` result backend prefix)."""
    parts = urlsplit(url)
    return DatabaseUrl(
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=parts.port or 5432,
        database=parts.path.lstrip("/"),
    )


@dataclass
class BrokerUrl:
    user: str
    password: str
    host: str
    port: int
    vhost: str


def parse_broker_url(url: str) -> BrokerUrl:
    """amqp://user:pass@host:port/vhost — the vhost is the path without its leading slash ('' is '/')."""
    parts = urlsplit(url)
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return BrokerUrl(
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        host=parts.hostname or "",
        port=parts.port or 5672,
        vhost=unquote(path) or "/",
    )


class Postgres:
    """A throwaway cluster (initdb) run as the `postgres` user on 127.0.0.1:<port>, standing in for RDS."""

    def __init__(self, procs: Processes, root: Path, port: int) -> None:
        self.procs = procs
        self.root = root / "postgres"
        self.port = port
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.proc: Proc | None = None

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    def start(self, timeout: float = 60) -> None:
        user = pwd.getpwnam("postgres")
        for sub in ("data", "run", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
            os.chown(self.root / sub, user.pw_uid, user.pw_gid)
        os.chmod(self.root / "data", 0o700)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.root / "home"), "LANG": "C.UTF-8"}
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.root / "data"),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
            ],
            env=env,
            user="postgres",
            group="postgres",
            check=True,
            capture_output=True,
        )
        self.proc = self.procs.start(
            "postgres",
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.root / "data"),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            env=env,
            cwd=self.root / "home",
            user="postgres",
            stop_signal=signal.SIGINT,  # fast shutdown
            stop_timeout=20,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError("postgres exited\n" + self.proc.describe_failure())
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.3)
        raise TimeoutError("postgres did not accept connections\n" + self.proc.describe_failure())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        import psycopg2  # noqa: PLC0415 - from the venv; only needed once the server runs

        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname=database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    def create_database(self, db: DatabaseUrl) -> None:
        """What RDS does with the master user: a login role owning the named database."""
        import psycopg2  # noqa: PLC0415
        from psycopg2 import sql  # noqa: PLC0415

        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                        sql.Identifier(db.user), sql.Literal(db.password)
                    )
                )
                cur.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db.database), sql.Identifier(db.user))
                )
        finally:
            conn.close()

    def connections(self) -> int:
        return int(self.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")[0][0])


def prepare_rabbitmq_files(root: Path) -> dict[str, str]:
    """The data, log and config locations of the RabbitMQ container (platform keys) and its Erlang cookie."""
    base = root / "rabbitmq"
    for sub in ("mnesia", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # Only rabbitmq-server and rabbitmqctl on this machine share this cookie (HOME is private).
    cookie = base / "home" / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(20))
    cookie.chmod(0o400)
    (base / "enabled_plugins").write_text("[].\n")  # the management plugin is not needed here
    (base / "rabbitmq.conf").write_text("")
    return {
        "HOME": str(base / "home"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
    }


def rabbitmqctl(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [f"{RABBITMQ_BIN}/rabbitmqctl", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_rabbitmq(procs: Processes, env: dict[str, str], cwd: Path, timeout: float = 90) -> tuple[Proc, Proc]:
    """epmd, then rabbitmq-server with the container's environment; waits until the broker runs."""
    epmd = procs.start(
        "epmd", [shutil.which("epmd", path=env["PATH"]) or "epmd", "-port", env["ERL_EPMD_PORT"]], env, cwd
    )
    server = procs.start("rabbitmq", [f"{RABBITMQ_BIN}/rabbitmq-server"], env, cwd, stop_timeout=30)
    waited = rabbitmqctl(env, "wait", "--timeout", str(int(timeout)), env["RABBITMQ_PID_FILE"], timeout=timeout + 10)
    if waited.returncode != 0 or not server.alive():
        raise RuntimeError(f"rabbitmq did not start: {waited.stdout}{waited.stderr}\n" + server.describe_failure())
    return epmd, server


def ensure_broker_account(env: dict[str, str], broker: BrokerUrl) -> list[str]:
    """Make sure the broker URL's user can use its vhost; returns what had to be created (should be nothing)."""
    created = []
    vhosts = rabbitmqctl(env, "-q", "list_vhosts", "name").stdout.split()
    if broker.vhost not in vhosts:
        rabbitmqctl(env, "add_vhost", broker.vhost)
        created.append(f"vhost {broker.vhost!r}")
    if rabbitmqctl(env, "authenticate_user", broker.user, broker.password).returncode != 0:
        if rabbitmqctl(env, "add_user", broker.user, broker.password).returncode != 0:
            rabbitmqctl(env, "change_password", broker.user, broker.password)
        created.append(f"user {broker.user!r}")
    permissions = rabbitmqctl(env, "-q", "list_user_permissions", broker.user).stdout.split()
    if broker.vhost not in permissions:
        rabbitmqctl(env, "set_permissions", "-p", broker.vhost, broker.user, ".*", ".*", ".*")
        created.append(f"permissions of {broker.user!r} on {broker.vhost!r}")
    return created
