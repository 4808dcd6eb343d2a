"""`make deploy` on the emulator runs Airflow: one real run (conftest.e2e) on the local runtime, checked piece by piece.

The run deploys site.yml to an emulator whose local ECS agent runs every task from its task
definition (embedded_aws/), waits for the UI behind the ALB listener, uses Airflow as a user would
and tears the stack down again.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from books_support import EXPECTED_REPORT_LINES, EXPECTED_SUMMARY, PNG_MAGIC

from e2e.runner import CLUSTER, CONTAINERS, DAG_ID, FARGATE_ROLE, PAGE_COUNT, SERVICES, Result
from embedded_aws.processes import leftovers

API_SERVERS = 1  # airflow_nodes_api_server_count's default (a rolling deploy starts the new one first)


def reached(result: Result, *steps: str) -> None:
    """Fail with the run's own error when a step this test needs failed or never ran."""
    for step in steps:
        if step in result.errors:
            pytest.fail(f"step {step!r} failed:\n{result.errors[step][-6000:]}")
        if step not in result.timings:
            pytest.fail(f"step {step!r} was not reached; first failure: {result.failed_step()}")


def test_make_deploy_ends_with_the_ui_healthy_behind_the_load_balancer(e2e: Result) -> None:
    reached(e2e, "steady")
    assert urlsplit(e2e.ui_url).hostname == "127.0.0.1"
    healthy = [t for t in e2e.target_health if t["TargetHealth"]["State"] == "healthy"]
    assert len(healthy) == API_SERVERS, e2e.target_health
    # The container port; the agent maps it to a local one.
    assert {t["Target"]["Port"] for t in healthy} == {8080}


def test_ecs_reports_every_service_running_and_healthy(e2e: Result) -> None:
    reached(e2e, "ecs state")
    assert set(e2e.services) == set(SERVICES)
    for name, service in e2e.services.items():
        assert service["status"] == "ACTIVE", name
        if name == "worker":  # autoscaled from zero: none while nothing is queued (the scale-out test below)
            assert service["desiredCount"] == service["runningCount"] == 0, service
            continue
        count = API_SERVERS if name == "api-server" else 1
        assert service["runningCount"] == service["desiredCount"] == count, name
        assert service["pendingCount"] == 0, name
        (deployment,) = service["deployments"]
        assert deployment["rolloutState"] == "COMPLETED", (name, deployment)
        assert len(e2e.tasks[name]) == count, name
        for task in e2e.tasks[name]:
            assert task["lastStatus"] == "RUNNING" and task["healthStatus"] == "HEALTHY", (name, task)
            assert task["startedBy"] == deployment["id"], name
            containers = {c["name"]: c for c in task["containers"]}
            # The node's own container, every Airflow node's metrics sidecar, the scheduler's colocated ones.
            assert set(containers) == CONTAINERS[name], name
            main = containers[name]
            assert main["lastStatus"] == "RUNNING" and main.get("healthStatus", "HEALTHY") == "HEALTHY", name
            assert all(c["lastStatus"] == "RUNNING" and "exitCode" not in c for c in containers.values()), name


def test_workers_idle_at_zero_and_the_first_task_makes_the_autoscaling_start_one(e2e: Result) -> None:
    """The policy that ships, applied by the local runtime as CloudWatch and Application Auto Scaling would:
    the worker-demand container publishes ceil(active / concurrency), the alarm runs the step policy, ECS
    starts a worker, and books_etl succeeds on it."""
    reached(e2e, "books_etl run")
    assert e2e.idle_workers == (0, 0)
    assert e2e.scale_out_seconds is not None and 0 < e2e.scale_out_seconds < 240, e2e.scale_out_seconds
    [worker] = e2e.tasks["worker"]
    assert worker["lastStatus"] == "RUNNING" and worker.get("healthStatus") != "UNHEALTHY", worker
    assert {c["name"] for c in worker["containers"]} == CONTAINERS["worker"]


def test_a_second_deploy_changes_nothing_and_restarts_nothing(e2e: Result) -> None:
    """Run after the secret rotation, so a finished rotation leaves nothing for it either; nor does it
    deregister the api-server task ECS registered in the target group (the UI stays up)."""
    reached(e2e, "deploy again")
    assert e2e.rerun_changed == 0
    assert e2e.restarted == []
    assert [t["TargetHealth"]["State"] for t in e2e.target_health_after_rerun] == ["healthy"] * API_SERVERS


def test_make_deploy_dags_ships_a_dag_without_touching_anything_else(e2e: Result) -> None:
    reached(e2e, "deploy dags alone")
    assert e2e.dags_alone["changed"] == 1, e2e.dags_alone  # the upload, nothing else
    assert e2e.dags_alone["seen_after_seconds"] < 90, e2e.dags_alone
    print(f"deploy-dags: {e2e.dags_alone}")


def test_workers_run_the_images_package_set_not_the_tool_chains(e2e: Result) -> None:
    """The worker imports what the deployed image has (the recipe's matplotlib, from the image's own
    environment, not .venv) and fails on a package the image lacks, as the task would on AWS."""
    reached(e2e, "image packages")
    # The project image built from image/ and pinned by digest in the task definition.
    ecr_digest = r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9/_-]+@sha256:[0-9a-f]{64}"
    assert re.fullmatch(ecr_digest, e2e.airflow_image), e2e.airflow_image
    state, text = e2e.image_packages["recipe_package"]
    assert state == "success", text[-3000:]
    imported_from = re.search(r"matplotlib \S+ from (\S+)", text)
    assert imported_from, text[-3000:]
    assert "/.venv/" not in imported_from.group(1), imported_from.group(1)
    state, text = e2e.image_packages["missing_package"]
    assert state == "failed", text[-3000:]
    assert "No module named 'polars'" in text, text[-3000:]


def test_tasks_on_the_ecs_executor_run_as_fargate_tasks_with_their_dags_role(e2e: Result) -> None:
    """fargate_task_roles on the AwsEcsExecutor: each task a RunTask of the scheduler's (<stack>-task with the role
    the e2e inventory maps the DAG to as overrides.taskRoleArn), run to its exit by the agent and read back by the
    executor. The task that writes under fargate/ succeeds; the one reading the admin secret fails with
    AccessDenied in its log; IAM judged both as that role. A DAG naming that role is refused at parsing."""
    reached(e2e, "fargate tasks")
    fargate = e2e.fargate
    tasks = fargate["tasks"]
    assert {task: t["state"] for task, t in tasks.items()} == {
        "write_with_its_role": "success",
        "read_what_its_role_lacks": "failed",
    }, {task: t["log"][-3000:] for task, t in tasks.items()}
    assert all(t["executor"] == "AwsEcsExecutor" for t in tasks.values()), tasks
    assert "wrote s3://" in tasks["write_with_its_role"]["log"]
    assert "AccessDenied" in tasks["read_what_its_role_lacks"]["log"], tasks["read_what_its_role_lacks"]["log"][-3000:]
    role_arn_end = f":role/{CLUSTER}-tasks/{FARGATE_ROLE}"
    # The cluster policy set the DAG's role in executor_config, the executor passed it to RunTask.
    assert all(role_arn_end in str(t["executor_config"]) for t in tasks.values()), tasks
    ecs_tasks = fargate["ecs_tasks"]
    assert len(ecs_tasks) == 2, ecs_tasks
    for task in ecs_tasks:
        assert task["taskDefinitionArn"].rsplit("/", 1)[-1].startswith(f"{CLUSTER}-task:"), task
        assert task["overrides"]["taskRoleArn"].endswith(role_arn_end), task["overrides"]
        assert task["lastStatus"] == "STOPPED" and task["stopCode"] == "EssentialContainerExited", task
        # The Task SDK reports the task's state itself: its process exits 0 for a failed task too.
        assert [c["exitCode"] for c in task["containers"]] == [0], task["containers"]
    assert fargate["proofs"] == [f"fargate/{e2e.fargate['run_id']}/proof.txt"], fargate["proofs"]
    decisions = dict(fargate["role_decisions"])
    assert decisions["s3:PutObject"] is True and decisions["secretsmanager:GetSecretValue"] is False, decisions
    assert "names the task role of other DAGs" in fargate["refused"], fargate["refused"][-3000:]
    print(f"fargate tasks: {e2e.timings['fargate tasks']:.1f} s")


def test_a_broker_task_replaced_mid_run_loses_no_task_instance(e2e: Result) -> None:
    """The queues and their messages outlive the broker task (quorum queues on its EFS volume, a stable node
    name, publishes retried through the outage): all 60 task instances succeed on their first try."""
    reached(e2e, "broker replacement")
    replaced = e2e.broker_replacement
    assert replaced["replaced"], replaced
    assert sum(n for state, n in replaced["at_stop"].items() if state != "success") >= 20, replaced  # mid-run
    assert replaced["run"] == "success", replaced
    assert replaced["states"] == {"success": 60}, replaced
    assert replaced["tries"] == {1: 60}, replaced
    print(f"broker replacement: {replaced}")


def test_a_rotation_of_every_secret_reaches_rds_the_broker_and_the_data(e2e: Result) -> None:
    """secrets_rotate on the running stack: the database, broker, Fernet, JWT and API secrets all change; a
    DAG run reading a stored connection and variable on a worker succeeds before and after; RDS refuses
    the old password; the data is re-encrypted and the Fernet secret holds the new key alone (the deploy
    after it changes nothing: test_a_second_deploy_changes_nothing_and_restarts_nothing)."""
    reached(e2e, "rotate secrets")
    rotation = e2e.rotation
    assert rotation["rotated"] == ["api_secret_key", "broker", "database", "fernet_key", "jwt_secret"], rotation
    assert rotation["runs"] == ["success", "success"], rotation
    assert rotation["connection_under_new_key"] and rotation["variable_under_new_key"], rotation
    assert rotation["old_database_password_refused"], rotation
    assert rotation["fernet_keys_after"] == 1, rotation
    print(f"rotation: {rotation}")


def test_service_tasks_are_registered_in_cloud_map(e2e: Result) -> None:
    reached(e2e, "ecs state")
    registered = {name: [i["Id"] for i in instances] for name, instances in e2e.discovery.items()}
    for service in ("api-server", "rabbitmq"):
        (name,) = [n for n in registered if n.startswith(f"{service}.")]
        assert sorted(registered[name]) == sorted(t["taskArn"].rsplit("/", 1)[-1] for t in e2e.tasks[service])


def test_tasks_get_their_role_credentials_from_the_credentials_endpoint(e2e: Result) -> None:
    reached(e2e, "ecs state")
    for name in SERVICES:
        task = e2e.task_environ[name]
        keys = set(task["environment_keys"])
        assert not keys & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}, name
        if name != "rabbitmq":
            assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in keys, name
            assert task["task_role"] == f"{CLUSTER}-{name}-task", name  # one task role per component


def test_the_migrate_task_exits_zero_on_a_fresh_and_on_a_live_database(e2e: Result) -> None:
    """The deploy's migrate task, then the same task again with the admin already there."""
    reached(e2e, "migrate again")
    assert len(e2e.migrate_tasks) == 2
    for task in e2e.migrate_tasks:
        assert task["lastStatus"] == "STOPPED", task
        assert task["stopCode"] == "EssentialContainerExited", task
        assert [c["exitCode"] for c in task["containers"]] == [0], task


def test_container_output_reaches_cloudwatch_through_the_execution_role(e2e: Result) -> None:
    reached(e2e, "container logs")
    for name in SERVICES:
        for task in e2e.tasks[name]:
            streams = [s for s in e2e.container_logs if f"/{task['taskArn'].rsplit('/', 1)[-1]}" in s]
            assert streams and all(e2e.container_logs[s] > 0 for s in streams), (name, sorted(e2e.container_logs))


def test_airflow_metrics_reach_cloudwatch_through_each_nodes_metrics_sidecar(e2e: Result) -> None:
    reached(e2e, "airflow metrics")
    metrics = e2e.airflow_metrics
    # Heartbeats of the scheduler, the triggerer and the dag-processor: three tasks' sidecars.
    for heartbeat in ("scheduler_heartbeat", "triggerer_heartbeat", "dag_processor_heartbeat"):
        assert metrics.get(heartbeat, {}).get("sum", 0) > 0, (heartbeat, sorted(metrics))
    # Sent by the task runner in the worker's processes: at least the books_etl run's task instances.
    assert metrics["ti_successes"]["sum"] >= len(e2e.task_instances), metrics["ti_successes"]
    # With more than one executor (Celery and the AwsEcsExecutor) Airflow names each one's: executor.open_slots.<class>.
    assert "pool.queued_slots" in metrics and "executor.open_slots.CeleryExecutor" in metrics, sorted(metrics)
    # The scheduler's sidecar samples the broker and (with the task role, under enforced IAM) ECS.
    assert metrics["RunningWorkers"]["max"] >= 1 and "WorkerShortfall" in metrics
    assert "BrokerQueueDepth{Queue=default}" in metrics
    # Tags never become dimensions by default: no metric per DAG, task or pool (each would be billed).
    assert [name for name in metrics if "{" in name] == ["BrokerQueueDepth{Queue=default}"]


def test_no_task_role_or_execution_role_was_denied_anything(e2e: Result) -> None:
    reached(e2e, "iam")
    assert e2e.denials == []


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


def test_the_databases_sampled_connections_stay_within_the_computed_worst_case(e2e: Result) -> None:
    """The runtime samples pg_stat_activity every 3 s through the whole run (books_etl, the 60-task run, the
    rotation's rolling deploys of every service): the peak stays within the preflight's worst case, which stays
    within the class's max_connections."""
    reached(e2e, "teardown")
    sampled = e2e.connections
    assert sampled["worst_case"] and sampled["peak"], sampled
    assert sampled["peak"] <= sampled["worst_case"] <= sampled["max_connections"] - 3, sampled
    print(f"connections: peak {sampled['peak']} of worst case {sampled['worst_case']}: {sampled['peak_by_client']}")


def test_teardown_stops_every_task_and_database(e2e: Result) -> None:
    reached(e2e, "teardown")
    runtime = e2e.teardown_runtime
    assert runtime["databases"] == {}
    assert {t["lastStatus"] for t in runtime["tasks"].values()} == {"STOPPED"}
    assert e2e.leftovers == [], e2e.findings


def test_nothing_is_left_running(e2e: Result) -> None:
    assert "stop" in e2e.timings
    assert e2e.leftovers == []
    assert leftovers(str(e2e.run_dir)) == []
