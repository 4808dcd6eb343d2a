"""The stack's cluster policy (roles/airflow/files/airflow_local_settings.py): a task on the AwsEcsExecutor
runs with the task role its DAG is mapped to (airflow_task_roles), and a DAG cannot choose another.

The policy is checked on real Airflow tasks, and through a DagBag as the dag-processor parses DAG files.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow.exceptions import AirflowClusterPolicyViolation
from airflow.sdk import DAG, task

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "airflow_ecs_cluster_policy", ROOT / "roles/airflow/files/airflow_local_settings.py"
)
policy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy)

MODULE = "airflow.providers.amazon.aws.executors.ecs.ecs_executor.AwsEcsExecutor"
ROLES = "arn:aws:iam::123456789012:role/airflow-tasks/"
MAPPING = {
    "executor": ["AwsEcsExecutor", MODULE],
    "task_definition": "airflow-task",
    "container": "task",
    "pool": "fargate_tasks",
    "pool_slots": 4,
    "task_cpu": 512,
    "default_role": f"{ROLES}airflow-task",
    "roles": {"books_etl": f"{ROLES}airflow-task-etl", "reports": f"{ROLES}airflow-task-reports"},
}
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(policy.MAPPING_VARIABLE, json.dumps(MAPPING))


def one_task(dag_id: str, **task_args):
    with DAG(dag_id, schedule=None, start_date=START):

        @task(**task_args)
        def work() -> None:
            pass

        return work().operator


def test_a_task_on_the_executor_runs_with_the_role_of_its_dag():
    work = one_task("books_etl", executor="AwsEcsExecutor")
    policy.task_policy(work)
    assert work.executor_config == {"overrides": {"taskRoleArn": f"{ROLES}airflow-task-etl"}}


def test_a_task_on_the_executor_takes_a_slot_of_its_pool_per_task_cpu_it_asks_for():
    default = one_task("books_etl", executor="AwsEcsExecutor", pool="somewhere_else")
    policy.task_policy(default)
    assert (default.pool, default.pool_slots) == ("fargate_tasks", 1)  # the quota check counts on this pool
    bigger = one_task("books_etl", executor="AwsEcsExecutor", executor_config={"overrides": {"cpu": "1024"}})
    policy.task_policy(bigger)
    assert (bigger.pool, bigger.pool_slots) == ("fargate_tasks", 2)
    celery = one_task("books_etl")
    policy.task_policy(celery)
    assert (celery.pool, celery.pool_slots) == ("default_pool", 1)


@pytest.mark.parametrize(("cpu", "fragment"), [("4096", "8 slots of the pool 'fargate_tasks', which has 4"),
                                               ("lots", "must be Fargate CPU units")])  # fmt: skip
def test_a_task_larger_than_the_pool_is_refused(cpu, fragment):
    work = one_task("books_etl", executor="AwsEcsExecutor", executor_config={"overrides": {"cpu": cpu}})
    with pytest.raises(AirflowClusterPolicyViolation, match=fragment):
        policy.task_policy(work)


def test_a_dag_without_an_entry_runs_with_the_default_role():
    work = one_task("somebody_elses", executor="AwsEcsExecutor")
    policy.task_policy(work)
    assert work.executor_config["overrides"]["taskRoleArn"] == f"{ROLES}airflow-task"


@pytest.mark.parametrize("name", [MODULE, "AwsEcsExecutor"])
def test_the_executor_is_recognised_by_every_name_airflow_accepts(name):
    work = one_task("reports", executor=name)
    policy.task_policy(work)
    assert work.executor_config["overrides"]["taskRoleArn"] == f"{ROLES}airflow-task-reports"


def test_a_celery_task_is_left_alone():
    work = one_task("books_etl", executor_config={"anything": 1})
    policy.task_policy(work)
    assert work.executor_config == {"anything": 1}


def test_the_size_and_environment_a_task_asks_for_are_kept():
    config = {
        "overrides": {
            "cpu": "1024",
            "memory": "4096",
            "containerOverrides": [{"name": "task", "memory": 3072, "environment": [{"name": "A", "value": "1"}]}],
        }
    }
    work = one_task("books_etl", executor="AwsEcsExecutor", executor_config=config)
    policy.task_policy(work)
    assert work.executor_config == {
        "overrides": {**config["overrides"], "taskRoleArn": f"{ROLES}airflow-task-etl"},
    }


def test_its_own_role_named_again_is_accepted():
    config = {"taskDefinition": "airflow-task", "overrides": {"taskRoleArn": f"{ROLES}airflow-task-etl"}}
    work = one_task("books_etl", executor="AwsEcsExecutor", executor_config=config)
    policy.task_policy(work)
    assert work.executor_config == config


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"overrides": {"taskRoleArn": f"{ROLES}airflow-task-reports"}}, "names the task role of other DAGs"),
        ({"overrides": {"taskRoleArn": f"{ROLES}airflow-task"}}, "names the task role of other DAGs"),
        ({"overrides": {"taskRoleArn": "arn:aws:iam::123456789012:role/admin"}}, "names a task role"),
        ({"taskDefinition": "airflow-task-reports"}, "names the task definition 'airflow-task-reports'"),
        ({"overrides": {"executionRoleArn": "arn:aws:iam::123456789012:role/x"}}, "may set only"),
        ({"networkConfiguration": {"awsvpcConfiguration": {"assignPublicIp": "ENABLED"}}}, "may set only"),
        ({"cluster": "another"}, "may set only"),
        ({"overrides": {"containerOverrides": [{"name": "other", "memory": 1}]}}, "must name the container 'task'"),
        ({"overrides": {"containerOverrides": [{"name": "task", "command": ["sh"]}]}}, "may set only"),
        ({"overrides": {"containerOverrides": []}}, "non-empty list"),
        ({"overrides": "x"}, "must be a mapping"),
    ],
)
def test_a_dag_asking_for_another_role_or_placement_is_refused(config, fragment):
    work = one_task("books_etl", executor="AwsEcsExecutor", executor_config=config)
    with pytest.raises(AirflowClusterPolicyViolation, match="airflow_task_roles") as refused:
        policy.task_policy(work)
    assert fragment in str(refused.value)
    assert "DAG 'books_etl', task 'work'" in str(refused.value)


def test_a_mapped_task_gets_the_role_through_its_partial_arguments():
    with DAG("reports", schedule=None, start_date=START) as dag:

        @task(executor="AwsEcsExecutor")
        def work(n: int) -> None:
            pass

        work.expand(n=[1, 2])
    (mapped,) = dag.tasks
    policy.task_policy(mapped)
    assert mapped.executor_config == {"overrides": {"taskRoleArn": f"{ROLES}airflow-task-reports"}}
    assert (mapped.pool, mapped.pool_slots) == ("fargate_tasks", 1)


def test_without_the_mapping_the_policy_does_nothing(monkeypatch):
    monkeypatch.delenv(policy.MAPPING_VARIABLE)
    work = one_task("books_etl", executor="AwsEcsExecutor", executor_config={"cluster": "x"})
    policy.task_policy(work)
    assert work.executor_config == {"cluster": "x"}


@pytest.fixture
def dag_processor(monkeypatch: pytest.MonkeyPatch):
    """Airflow as the dag-processor runs it: the executors of the stack configured, the file imported as
    airflow_local_settings and plugged into Airflow's policy hooks (removed again afterwards)."""
    from collections import defaultdict  # noqa: PLC0415

    from airflow import policies, settings  # noqa: PLC0415
    from airflow.executors import executor_loader  # noqa: PLC0415

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", f"CeleryExecutor,AwsEcsExecutor:{MODULE}")
    monkeypatch.setattr(executor_loader, "_executor_names", [])
    for cache in ("_alias_to_executors_per_team", "_module_to_executors_per_team", "_classname_to_executors_per_team"):
        monkeypatch.setattr(executor_loader, cache, defaultdict(dict))
    monkeypatch.setattr(executor_loader, "_team_name_to_executors", defaultdict(list))
    manager = settings.get_policy_plugin_manager()
    before = set(manager.get_plugins())
    policies.make_plugin_from_local_settings(manager, policy, {"task_policy"})
    yield
    for plugin in set(manager.get_plugins()) - before:
        manager.unregister(plugin)


def test_the_dag_processor_refuses_a_dag_that_takes_another_teams_role(tmp_path, dag_processor):
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415

    (tmp_path / "dags.py").write_text(
        textwrap.dedent(
            f"""
            from datetime import datetime, timezone
            from airflow.sdk import DAG, task

            for dag_id, config in [
                ("books_etl", {{}}),
                ("reports", {{"overrides": {{"taskRoleArn": "{ROLES}airflow-task-etl"}}}}),
            ]:
                with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
                    @task(executor="AwsEcsExecutor", executor_config=config)
                    def work():
                        pass

                    work()
            """
        )
    )
    bag = DagBag(dag_folder=str(tmp_path))
    assert list(bag.dags) == ["books_etl"], bag.import_errors
    assert bag.dags["books_etl"].get_task("work").executor_config == {
        "overrides": {"taskRoleArn": f"{ROLES}airflow-task-etl"}
    }
    (error,) = bag.import_errors.values()
    assert "DAG 'reports', task 'work': executor_config names the task role of other DAGs" in error, error


def test_only_the_hook_reaches_airflow_settings():
    """Airflow copies the public names of airflow_local_settings into airflow.settings: just the policy."""
    assert policy.__all__ == ["task_policy"]
