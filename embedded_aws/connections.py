"""Each local PostgreSQL as RDS sizes it, and the connections its clients really open.

RDS gives a PostgreSQL instance max_connections = LEAST({DBInstanceClassMemory/9531392}, 5000) by default; the
runtime starts the server that stands in for it with the same figure (the project's one computation of it,
plugins/filter/capacity.py), so a stack that opens more connections than its class allows fails here too.
Every SAMPLE_SECONDS a sampler counts the client backends in pg_stat_activity, per database and per
(user, application_name), and keeps the peaks: runtime.json `databases.<key>.connections`, which the e2e prints
beside the computed worst case (the deploy summary's "Database connections" line).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("embedded_aws.connections")
SAMPLE_SECONDS = 3.0
CAPACITY = Path(__file__).resolve().parents[1] / "plugins" / "filter" / "capacity.py"
# Client backends by database and by (user, application) at one instant; the sampler's own session excluded.
QUERY = """
SELECT coalesce(datname, ''), coalesce(usename, ''), coalesce(application_name, ''), count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2, 3
"""


def _capacity() -> Any:
    spec = importlib.util.spec_from_file_location("airflow_ecs_capacity", CAPACITY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def max_connections_for(instance_class: str) -> int | None:
    """What RDS would set for the class; None (the server's own default) for a class the table lacks."""
    capacity = _capacity()
    try:
        return capacity.rds_max_connections(instance_class)
    except capacity.CapacityError:
        return None


@dataclass
class ConnectionPeaks:
    """High-water marks of client connections: all of them, per database, per user/application."""

    max_connections: int | None = None
    samples: int = 0
    current: int = 0
    peak: int = 0
    by_database: dict[str, int] = field(default_factory=dict)
    by_client: dict[str, int] = field(default_factory=dict)  # "user/application_name" -> peak
    error: str = ""

    def add(self, rows: list[tuple[str, str, str, int]]) -> None:
        self.samples += 1
        self.current = sum(count for *_, count in rows)
        self.peak = max(self.peak, self.current)
        databases: dict[str, int] = {}
        clients: dict[str, int] = {}
        for database, user, application, count in rows:
            databases[database] = databases.get(database, 0) + count
            key = f"{user}/{application or '-'}"
            clients[key] = clients.get(key, 0) + count
        for key, count in databases.items():
            self.by_database[key] = max(self.by_database.get(key, 0), count)
        for key, count in clients.items():
            self.by_client[key] = max(self.by_client.get(key, 0), count)

    def report(self) -> dict[str, Any]:
        return {
            "max_connections": self.max_connections,
            "samples": self.samples,
            "current": self.current,
            "peak": self.peak,
            "peak_by_database": dict(sorted(self.by_database.items())),
            "peak_by_client": dict(sorted(self.by_client.items())),
            "error": self.error,
        }


class Sampler:
    """Samples one server every SAMPLE_SECONDS through its socket, as the postgres superuser, until stopped."""

    def __init__(self, socket_dir: Path, port: int, peaks: ConnectionPeaks) -> None:
        self.socket_dir, self.port, self.peaks = socket_dir, port, peaks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pg-connections-{port}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg2  # noqa: PLC0415

        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = psycopg2.connect(
                        host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                        application_name="embedded-aws-sampler",
                    )  # fmt: skip
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(QUERY)
                    self.peaks.add([(d, u, a, int(n)) for d, u, a, n in cur.fetchall()])
                self.peaks.error = ""
            except Exception as exc:  # the server may be stopping; the next round reconnects
                self.peaks.error = f"{type(exc).__name__}: {str(exc).strip()}"
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = None
            self._stop.wait(SAMPLE_SECONDS)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
