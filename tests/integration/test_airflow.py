"""The Airflow platform of the deployed stack: services, wiring, ALB, migration order, targeted updates."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.xdist_group("stack")

AIRFLOW_NODES = ["api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower"]
SHARED_SECRETS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
}
CREDENTIAL_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|_KEY$|SQL_ALCHEMY_CONN|BROKER_URL|RESULT_BACKEND")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


@pytest.fixture(scope="module")
def ecs(deployed):
    return deployed.emulator.client("ecs")


@pytest.fixture(scope="module")
def services(ecs) -> dict[str, dict]:
    arns = ecs.list_services(cluster="airflow")["serviceArns"]
    described = ecs.describe_services(cluster="airflow", services=arns)["services"]
    return {s["serviceName"]: s for s in described if s["status"] == "ACTIVE"}


@pytest.fixture(scope="module")
def containers(ecs, services) -> dict[str, dict]:
    """The container definition of each service, by node name, plus the migrate task's."""
    found = {}
    for name, service in services.items():
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        found[name.removeprefix("airflow-")] = definition["containerDefinitions"][0]
    migrate = ecs.describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    found["migrate"] = migrate["containerDefinitions"][0]
    return found


def test_seven_services_run_the_six_nodes_and_the_broker(services):
    assert sorted(services) == sorted(f"airflow-{n}" for n in [*AIRFLOW_NODES, "rabbitmq"])
    for service in services.values():
        assert service["desiredCount"] == 1
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
        # The emulator drops deploymentConfiguration (circuit breaker, percents): not checkable here.


@pytest.mark.parametrize(
    ("node", "command"),
    [
        ("api-server", ["api-server"]),
        ("scheduler", ["scheduler"]),
        ("dag-processor", ["dag-processor"]),
        ("triggerer", ["triggerer"]),
        ("worker", ["celery", "worker"]),
        ("flower", ["celery", "flower"]),
    ],
)
def test_each_node_runs_its_component_with_a_health_check(containers, node, command):
    container = containers[node]
    assert container["image"] == "apache/airflow:3.3.2"
    assert container["command"] == command
    assert container["healthCheck"]["command"][0] == "CMD-SHELL"


def test_every_airflow_container_has_the_same_broker_db_and_key_wiring(containers):
    wiring = {}
    for node in [*AIRFLOW_NODES, "migrate"]:
        secrets = {s["name"]: s["valueFrom"] for s in containers[node]["secrets"]}
        assert set(secrets) >= SHARED_SECRETS, f"{node} lacks {SHARED_SECRETS - set(secrets)}"
        wiring[node] = {k: secrets[k] for k in SHARED_SECRETS}
        env = {e["name"]: e["value"] for e in containers[node]["environment"]}
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server.airflow.internal:8080/execution/"
        assert "S3DagBundle" in env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]
    assert len({tuple(sorted(w.items())) for w in wiring.values()}) == 1


def test_no_plaintext_credential_in_any_environment(containers):
    for node, container in containers.items():
        for variable in container["environment"]:
            assert not CREDENTIAL_NAME.search(variable["name"]), f"{node}: {variable['name']} is in environment"
            assert not URL_WITH_PASSWORD.search(variable["value"]), f"{node}: {variable['name']} holds a password"


def test_worker_shuts_down_warm(containers):
    worker = containers["worker"]
    env = {e["name"]: e["value"] for e in worker["environment"]}
    assert env["DUMB_INIT_SETSID"] == "0"
    assert worker["stopTimeout"] == 120


def test_flower_has_basic_auth_from_a_secret(containers):
    assert "AIRFLOW__CELERY__FLOWER_BASIC_AUTH" in {s["name"] for s in containers["flower"]["secrets"]}


def test_api_server_is_behind_the_alb_and_in_cloud_map(deployed, services):
    api = services["airflow-api-server"]
    assert api["serviceRegistries"]
    elb = deployed.emulator.client("elbv2")
    [target_group] = elb.describe_target_groups(Names=["airflow-api-server"])["TargetGroups"]
    assert target_group["HealthCheckPath"] == "/api/v2/monitor/health"
    assert target_group["TargetType"] == "ip" and target_group["Port"] == 8080
    assert api["loadBalancers"][0]["targetGroupArn"] == target_group["TargetGroupArn"]
    [alb] = elb.describe_load_balancers(Names=["airflow-alb"])["LoadBalancers"]
    assert alb["Scheme"] == "internet-facing"
    [listener] = elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]
    assert listener["Port"] == 80
    assert listener["DefaultActions"][0]["TargetGroupArn"] == target_group["TargetGroupArn"]


def test_migration_ran_before_any_airflow_service_was_created(deployed):
    output = deployed.first.output
    migrate = output.index("TASK [airflow : Run `airflow db migrate`")
    airflow_services = output.index("Create or update the services", output.index("TASK [airflow_nodes :"))
    assert migrate < airflow_services
    assert "airflow-migrate" in output[migrate:airflow_services]
    tasks = deployed.emulator.client("ecs").list_tasks(cluster="airflow", startedBy="airflow-ecs-migrate")
    assert tasks["taskArns"], "no migrate task was started"
    s3 = deployed.emulator.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="airflow-dags-123456789012-us-east-1")["Contents"]]
    assert ".airflow-ecs/migrations/airflow-migrate-1" in keys


def test_rerun_does_not_migrate_again(deployed):
    assert "TASK [airflow : Run `airflow db migrate`" in deployed.second.output
    section = deployed.second.output.split("TASK [airflow : Run `airflow db migrate`", 1)[1].split("TASK [", 1)[0]
    assert "skipping" in section


def test_dags_are_in_the_versioned_dag_bucket(deployed):
    s3 = deployed.emulator.client("s3")
    bucket = "airflow-dags-123456789012-us-east-1"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dags/")["Contents"]}
    assert {"dags/books_etl.py", "dags/etl/scrape.py", "dags/.airflowignore"} <= keys
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_changing_worker_size_changes_only_the_worker(deployed, containers):
    resized = deployed.resized
    assert resized.returncode == 0, resized.output[-4000:]
    changed = [line for line in resized.output.splitlines() if line.startswith("changed:")]
    assert changed, "the resize changed nothing"
    assert all("airflow-worker" in line for line in changed), changed
    assert containers["worker"]["cpu"] == 2048 and containers["worker"]["memory"] == 4096
    assert containers["scheduler"]["cpu"] == 1024
