"""What the local runtime takes from Debian: PostgreSQL for each RDS instance, RabbitMQ's files for its container.

Both come from Debian packages (the launcher installs them when missing) and run without systemd,
as children of the emulator with their data in the runtime directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

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


class Postgres:
    """A throwaway cluster (initdb) run as the `postgres` user on 127.0.0.1:<port>, standing in for RDS."""

    def __init__(self, procs: Processes, root: Path, port: int, max_connections: int | None = None) -> None:
        self.procs = procs
        self.root = root / "postgres"
        self.port = port
        self.max_connections = max_connections  # as RDS sets it for the instance class (connections.py)
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
                *(["-c", f"max_connections={self.max_connections}"] if self.max_connections else []),
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

    def set_password(self, user: str, password: str) -> None:
        import psycopg2  # noqa: PLC0415
        from psycopg2 import sql  # noqa: PLC0415

        conn = psycopg2.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
        finally:
            conn.close()


# The rabbitmq image's data directory (its HOME, with the Erlang cookie, and mnesia/<node name>).
RABBITMQ_DATA_DIR = "/var/lib/rabbitmq"


def prepare_rabbitmq_files(root: Path, data_dir: Path | None = None) -> dict[str, str]:
    """The data, log and config locations of the RabbitMQ container (platform keys) and its Erlang cookie.

    `data_dir`: the host directory mounted at the image's RABBITMQ_DATA_DIR (an EFS volume), which then
    holds the node's data and cookie across tasks, as in the image; else a directory of the task's own."""
    base = root / "rabbitmq"
    for sub in ("mnesia", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    home = data_dir or base / "home"
    mnesia = home / "mnesia" if data_dir else base / "mnesia"
    mnesia.mkdir(parents=True, exist_ok=True)
    # Only rabbitmq-server and rabbitmqctl on this machine share this cookie (HOME is private).
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
    (base / "enabled_plugins").write_text("[].\n")  # the management plugin is not needed here
    (base / "rabbitmq.conf").write_text("")
    return {
        "HOME": str(home),
        "RABBITMQ_MNESIA_BASE": str(mnesia),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
    }
