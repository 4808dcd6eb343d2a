"""The local runtime's PostgreSQL as RDS sizes it, and its connection sampling (embedded_aws/connections.py)."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from embedded_aws import connections, servers
from embedded_aws.forwarder import free_port
from embedded_aws.processes import Processes


def test_max_connections_follow_the_instance_class():
    assert connections.max_connections_for("db.t4g.micro") == 78
    assert connections.max_connections_for("db.t4g.small") == 188
    assert connections.max_connections_for("db.unknown.large") is None  # the server's own default


def test_peaks_keep_the_high_water_marks_per_database_and_client():
    peaks = connections.ConnectionPeaks(max_connections=188)
    peaks.add([("airflow", "airflow", "", 3), ("airflow", "airflow", "celery", 2), ("postgres", "x", "psql", 1)])
    peaks.add([("airflow", "airflow", "", 1)])
    report = peaks.report()
    assert (report["peak"], report["current"], report["samples"]) == (6, 1, 2)
    assert report["peak_by_database"] == {"airflow": 5, "postgres": 1}
    assert report["peak_by_client"] == {"airflow/-": 3, "airflow/celery": 2, "x/psql": 1}


@pytest.mark.skipif(
    os.geteuid() != 0 or not glob.glob(servers.APT_PACKAGES["postgresql"]), reason="needs root and Debian's postgresql"
)
def test_a_local_server_has_the_class_limit_and_its_clients_are_counted():
    tmp_path = Path(tempfile.mkdtemp(prefix="airflow-ecs-connections-"))  # the postgres user must reach it
    tmp_path.chmod(0o755)
    postgres = servers.Postgres(Processes(tmp_path), tmp_path, free_port(), max_connections=20)
    postgres.start()
    peaks = connections.ConnectionPeaks(max_connections=20)
    sampler = connections.Sampler(postgres.socket_dir, postgres.port, peaks)
    clients = []
    try:
        connect = {"host": str(postgres.socket_dir), "port": postgres.port, "user": "postgres", "dbname": "postgres"}
        conn = psycopg2.connect(**connect)
        with conn.cursor() as cur:
            cur.execute("SHOW max_connections")
            assert cur.fetchone()[0] == "20"
        conn.close()
        clients = [psycopg2.connect(**connect, application_name="budget-test") for _ in range(4)]
        sampler.start()
        deadline = time.monotonic() + 10
        while peaks.samples < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert peaks.peak == 4, peaks.report()
        assert peaks.by_client == {"postgres/budget-test": 4}
    finally:
        sampler.stop()
        for client in clients:
            client.close()
        postgres.stop()
        shutil.rmtree(tmp_path, ignore_errors=True)
