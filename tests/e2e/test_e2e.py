"""The deployed configuration boots a working Airflow: one real run (conftest.e2e), checked piece by piece.

The run deploys site.yml to a private emulator, reads the task definitions back through the AWS API,
and starts every container as a local process with exactly its command, environment and secrets,
except for the printed rewrites (host names, ports, bind addresses, the AWS endpoint).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from books_support import EXPECTED_REPORT_LINES, EXPECTED_SUMMARY, PNG_MAGIC

from e2e.localize import (
    AIRFLOW_BIND_SETTINGS,
    AIRFLOW_PORT_SETTINGS,
    AWS_KEYS,
    HEALTH_CHECK,
    LOCALHOST,
    PLATFORM_KEYS,
    URL,
    is_airflow,
)
from e2e.procs import leftovers
from e2e.runner import DAG_ID, PAGE_COUNT, SERVICE_ORDER, Result

SERVICES = [*SERVICE_ORDER, "rabbitmq"]
RABBITMQ_PORT_KEYS = {"RABBITMQ_NODE_PORT", "RABBITMQ_DIST_PORT", "ERL_EPMD_PORT"}
RABBITMQ_BIND_KEYS = {"RABBITMQ_NODE_IP_ADDRESS", "ERL_EPMD_ADDRESS", "RABBITMQ_SERVER_START_ARGS"}


def reached(result: Result, *steps: str) -> None:
    """Fail with the run's own error when a step this test needs failed or never ran."""
    for step in steps:
        if step in result.errors:
            pytest.fail(f"step {step!r} failed:\n{result.errors[step][-6000:]}")
        if step not in result.timings:
            pytest.fail(f"step {step!r} was not reached; first failure: {result.failed_step()}")


def test_the_stack_is_read_back_from_the_aws_api(e2e: Result) -> None:
    reached(e2e, "read stack")
    assert e2e.stack is not None
    assert set(e2e.stack.containers) == {*SERVICES, "migrate"}
    for name, container in e2e.stack.containers.items():
        assert container.resolved_secrets.keys() == container.secrets.keys(), name
        assert all(container.resolved_secrets.values()), f"{name}: an empty secret"
    assert e2e.stack.migrate.family.endswith("-migrate")
    assert e2e.stack.discovery == {
        "api-server": f"api-server.{e2e.stack.namespace}",
        "rabbitmq": f"rabbitmq.{e2e.stack.namespace}",
    }


def test_processes_get_exactly_the_task_definition_plus_the_listed_rewrites(e2e: Result) -> None:
    """The environment each process really got (/proc/<pid>/environ) against its task definition."""
    reached(e2e, "start services")
    assert set(e2e.effective_env) == {*SERVICES, "migrate"}
    for name, effective in e2e.effective_env.items():
        local = e2e.containers[name]
        declared = local.container.declared_env
        rewrites = {r.key: r for r in local.rewrites if r.key != HEALTH_CHECK}
        assert set(local.platform) <= PLATFORM_KEYS, name
        assert not set(local.platform) & set(declared), f"{name}: the platform overrides the task definition"
        for key in sorted(set(declared) | set(effective)):
            if key in local.platform:
                assert effective[key] == local.platform[key], f"{name}: {key}"
            elif key in rewrites:
                assert declared.get(key) == rewrites[key].before, f"{name}: {key} is not what the rewrite says"
                assert effective.get(key) == rewrites[key].after, f"{name}: {key} is not what the rewrite says"
            else:
                assert key in declared, f"{name}: {key} appeared without being listed"
                assert effective.get(key) == declared[key], f"{name}: {key} changed without being listed"


def _same_but_netloc(before: str, after: str, local_ports: set[int]) -> bool:
    """Every URL keeps scheme, credentials, path and query; only the host becomes 127.0.0.1:<local port>."""
    old, new = URL.findall(before), URL.findall(after)
    if len(old) != len(new) or URL.sub("", before) != URL.sub("", after):
        return False
    changed = False
    for a, b in zip(old, new, strict=True):
        pa, pb = urlsplit(a), urlsplit(b)
        same = (pa.scheme, pa.username, pa.password, pa.path, pa.query) == (
            pb.scheme,
            pb.username,
            pb.password,
            pb.path,
            pb.query,
        )
        if not same:
            return False
        if a != b:
            changed = True
            if pb.hostname != LOCALHOST or pb.port not in local_ports:
                return False
    return changed


def test_every_rewrite_is_a_host_port_bind_or_aws_endpoint_change(e2e: Result) -> None:
    reached(e2e, "read stack")
    assert e2e.endpoints is not None and e2e.stack is not None
    local_ports = set(e2e.endpoints.ports.values())
    remote_hosts = {host for host, _ in e2e.endpoints.hosts}
    assert e2e.stack.database[0] in remote_hosts and e2e.stack.load_balancer in remote_hosts
    airflow_ports = {key for key, _ in AIRFLOW_PORT_SETTINGS}
    for r in e2e.rewrites:
        container = e2e.containers[r.container].container
        where = f"{r.container}: {r.key}"
        if r.kind == "host":
            if r.key == "RABBITMQ_NODENAME":
                assert r.before is None and r.after.endswith("@localhost"), where
            else:
                assert r.before is not None and _same_but_netloc(r.before, r.after, local_ports), where
                assert any(host in r.before for host in remote_hosts), where
        elif r.kind == "port":
            if r.key == HEALTH_CHECK:
                assert re.sub(r":\d+/", ":/", r.before or "") == re.sub(r":\d+/", ":/", r.after), where
            else:
                allowed = airflow_ports if is_airflow(container) else RABBITMQ_PORT_KEYS
                assert r.key in allowed and int(r.after) in local_ports | set(e2e.endpoints.extra_rabbitmq.values())
        elif r.kind == "bind":
            allowed = set(AIRFLOW_BIND_SETTINGS) if is_airflow(container) else RABBITMQ_BIND_KEYS
            assert r.key in allowed and "127" in r.after, where
        elif r.kind == "aws-endpoint":
            assert r.key in AWS_KEYS and r.before is None, where
            if r.key == "AWS_ENDPOINT_URL":
                assert urlsplit(r.after).hostname == LOCALHOST, where
        else:
            pytest.fail(f"{where}: unknown kind of rewrite {r.kind!r}")
    # The Airflow settings that name other services all point at local servers now.
    worker = e2e.containers["worker"].env
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    ):
        assert urlsplit(worker[key]).hostname == LOCALHOST, key


def test_migrate_runs_first_and_exits_zero(e2e: Result) -> None:
    reached(e2e, "migrate")
    assert e2e.migrate_exit == 0
    order = e2e.start_order
    assert order.index("migrate") < min(order.index(n) for n in SERVICE_ORDER if n in order)
    assert order[: order.index("migrate")] == ["rabbitmq"]


def test_migrate_can_run_again_with_the_admin_already_there(e2e: Result) -> None:
    """Each new migrate revision runs again on a live database: `users reset-password`, not `create`."""
    reached(e2e, "migrate re-run")
    assert e2e.migrate_rerun_exit == 0, e2e.migrate_rerun_log
    # ui screenshot logs in afterwards with the secret's password: the reset kept it valid.


def test_every_container_passes_its_own_health_check(e2e: Result) -> None:
    reached(e2e, "health checks")
    assert e2e.stack is not None
    for name in SERVICES:
        check = e2e.stack.containers[name].health_check
        assert check is not None, f"{name} has no health check in its task definition"
        health = e2e.health[name]
        assert health.healthy, f"{name}: {health.command}: {health.output}"
        rewritten = [r for r in e2e.containers[name].rewrites if r.key == HEALTH_CHECK]
        assert health.command == (rewritten[0].after if rewritten else check.command)


def test_books_etl_succeeds_through_the_celery_workers(e2e: Result) -> None:
    reached(e2e, "books_etl run")
    assert e2e.dag_run["state"] == "success"
    assert e2e.dag_run["run_type"] == "manual"
    assert e2e.dag_run["conf"]["page_count"] == PAGE_COUNT
    assert not e2e.stray_runs, f"the scheduler started runs of its own: {e2e.stray_runs}"
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in e2e.task_instances}
    assert set(states.values()) == {"success"}, states
    assert sorted(states) == sorted(
        [("plan", -1), ("transform", -1), ("upload", -1), ("analyze", -1)]
        + [("scrape_page", i) for i in range(PAGE_COUNT)]
    )
    # Every task instance went through RabbitMQ to the Celery worker (its log counts the Celery tasks).
    executed = e2e.worker_tasks_succeeded
    assert executed >= len(states), f"the worker ran {executed} Celery tasks for {len(states)} task instances"


def test_outputs_land_in_the_data_bucket(e2e: Result) -> None:
    reached(e2e, "s3 outputs")
    dt = (e2e.dag_run.get("logical_date") or e2e.dag_run["run_after"])[:10]
    keys = set(e2e.data_keys)
    for page in range(1, PAGE_COUNT + 1):
        assert f"raw/{dt}/page-{page}/manifest.json" in keys
        assert f"raw/{dt}/page-{page}/catalogue.html" in keys
    assert f"staging/{dt}/books.parquet" in keys
    assert e2e.parquet_rows == EXPECTED_SUMMARY["rows"]
    for line in EXPECTED_REPORT_LINES:
        assert line in e2e.report_md
    assert e2e.chart_png.startswith(PNG_MAGIC)


def test_task_logs_are_readable_through_the_api(e2e: Result) -> None:
    reached(e2e, "task logs")
    expected = {
        "plan[-1]#1": f"Scraping {PAGE_COUNT} page(s)",
        "transform[-1]#1": f"Parsed {EXPECTED_SUMMARY['rows']} valid",
        "upload[-1]#1": f"Published {EXPECTED_SUMMARY['rows']} rows",
        "analyze[-1]#1": "report.md and chart.png",
        **{f"scrape_page[{i}]#1": f"Page {i + 1}: stored" for i in range(PAGE_COUNT)},
    }
    for key, text in expected.items():
        assert key in e2e.task_logs, f"no log for {key}"
        assert text in e2e.task_logs[key], f"{key}: {text!r} not in\n{e2e.task_logs[key][-2000:]}"
        # Remote logging works: the api-server reads the finished task's log back from CloudWatch.
        assert "Reading remote log from Cloudwatch" in e2e.task_logs[key], key


def test_remote_task_logs_go_to_cloudwatch(e2e: Result) -> None:
    reached(e2e, "cloudwatch")
    run_id = e2e.dag_run["dag_run_id"].replace(":", "_")
    streams = {name: events for name, events in e2e.cloudwatch.items() if f"dag_id={DAG_ID}/" in name}
    mine = [name for name in streams if run_id in name]
    assert len(mine) == len(e2e.task_instances), sorted(streams)
    assert all(streams[name] > 0 for name in mine), streams


def test_the_ui_shows_the_dag_and_its_successful_run(e2e: Result) -> None:
    reached(e2e, "ui screenshot")
    assert e2e.screenshot is not None and e2e.screenshot.read_bytes().startswith(PNG_MAGIC)
    assert e2e.screenshot.stat().st_size > 20_000, "an almost empty picture"
    assert DAG_ID in e2e.page_text
    assert e2e.dag_run["dag_run_id"] in e2e.page_text
    assert re.search(r"\bsuccess\b", e2e.page_text, re.IGNORECASE)


def test_nothing_is_left_running(e2e: Result) -> None:
    assert "stop" in e2e.timings
    assert e2e.leftovers == []
    assert leftovers(str(e2e.run_dir)) == []
