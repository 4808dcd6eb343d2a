"""Invalid inputs stop the play with one message per bad variable before any resource exists.

Each case names the variable the message must open with and a fragment of what it must say; the
account must hold nothing afterwards. The cases are judged together: each is a host of one inventory
with its values as host vars, so one site.yml run fails each host with its own message (a run per case
cost 84 processes). Changes refused on a deployed stack are in test_live_changes.py.
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from ansible_runner import BIN, RECAP, ROOT, PlayResult, base_env, run_playbook, upgraded_recipe
from certificates import import_self_signed_certificate
from emulator import free_port
from stack_inventory import leftover_resources

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
ECR_AIRFLOW = "123456789012.dkr.ecr.us-east-1.amazonaws.com/airflow/airflow"


def stale_recipe() -> Path:
    """image/ with a requirement added to requirements.txt after requirements.lock was made."""
    directory = Path(tempfile.mkdtemp(prefix="airflow-ecs-stale-recipe-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    upgraded_recipe(directory, note="")
    with (directory / "requirements.txt").open("a") as requirements:
        requirements.write("requests>=2.32\n")
    return directory


STALE_RECIPE = stale_recipe()

# id: (extra vars, variable named by the message, fragment of the message)
BAD_INPUTS = {
    # network
    "cidr-not-a-network": ({"network_vpc_cidr": "10.40.0.0/33"}, "network_vpc_cidr", "is not an IPv4 network"),
    "cidr-host-bits": ({"network_vpc_cidr": "10.40.0.1/16"}, "network_vpc_cidr", "has host bits set"),
    "cidr-without-prefix": ({"network_vpc_cidr": "10.40.0.0"}, "network_vpc_cidr", "in CIDR form"),
    "vpc-too-large": ({"network_vpc_cidr": "10.0.0.0/8"}, "network_vpc_cidr", "prefix from /16 to /24"),
    "vpc-multicast": ({"network_vpc_cidr": "224.1.0.0/16"}, "network_vpc_cidr", "multicast"),
    "vpc-loopback": ({"network_vpc_cidr": "127.10.0.0/16"}, "network_vpc_cidr", "loopback"),
    "vpc-link-local": ({"network_vpc_cidr": "169.254.0.0/16"}, "network_vpc_cidr", "link-local"),
    "vpc-cidr-a-list": ({"network_vpc_cidr": ["10.40.0.0/16"]}, "network_vpc_cidr", "must be a string"),
    "subnet-outside-vpc": (
        {"network_public_subnet_cidrs": ["10.99.0.0/24", "10.40.1.0/24"]},
        "network_public_subnet_cidrs",
        "'10.99.0.0/24' lies outside network_vpc_cidr",
    ),
    "subnets-overlap": (
        {"network_public_subnet_cidrs": ["10.40.0.0/24", "10.40.0.0/25"]},
        "network_public_subnet_cidrs",
        "overlaps",
    ),
    "private-overlaps-public": (
        {
            "network_public_subnet_cidrs": ["10.40.0.0/24", "10.40.1.0/24"],
            "network_private_subnet_cidrs": ["10.40.1.0/24", "10.40.2.0/24"],
        },
        "network_private_subnet_cidrs",
        "overlaps",
    ),
    "subnet-smaller-than-28": (
        {"network_public_subnet_cidrs": ["10.40.0.0/29", "10.40.0.16/28"]},
        "network_public_subnet_cidrs",
        "prefix from /16 to /28",
    ),
    "subnets-a-string": (
        {"network_public_subnet_cidrs": "10.40.0.0/24,10.40.1.0/24"},
        "network_public_subnet_cidrs",
        "must be a list",
    ),
    "subnet-count-differs-from-az-count": (
        {"network_private_subnet_cidrs": ["10.40.100.0/24"]},
        "network_private_subnet_cidrs",
        "exactly network_az_count",
    ),
    "one-az": ({"network_az_count": 1}, "network_az_count", "at least 2"),
    "nine-azs": ({"network_az_count": 9}, "network_az_count", "at most 6"),
    "az-count-a-string": ({"network_az_count": "3"}, "network_az_count", "must be a whole number"),
    "more-azs-than-the-region": (
        {"aws_region": "eu-west-1", "network_az_count": 4},
        "network_az_count",
        "offers only 3",
    ),
    "nat-per-az-a-string": ({"network_nat_per_az": "false"}, "network_nat_per_az", "must be a boolean"),
    "egress-unknown": ({"network_egress": "nat"}, "network_egress", "one of ['nat_instance', 'nat_gateway']"),
    "egress-a-boolean": ({"network_egress": True}, "network_egress", "must be a string"),
    "nat-instance-type-x86": (
        {"network_nat_instance_type": "t3.nano"},
        "network_nat_instance_type",
        "an arm64 (Graviton) instance type, as the NAT instance runs Amazon Linux 2023 for arm64: one of t4g.nano,",
    ),
    "alb-cidr-invalid": ({"network_alb_allowed_cidrs": ["everyone"]}, "network_alb_allowed_cidrs", "item 'everyone'"),
    "alb-cidrs-a-string": ({"network_alb_allowed_cidrs": "0.0.0.0/0"}, "network_alb_allowed_cidrs", "must be a list"),
    # stack-wide
    "stack-name-uppercase": ({"stack_name": "Airflow_Prod"}, "stack_name", "2-21 characters"),
    "stack-name-too-long": ({"stack_name": "a" * 22}, "stack_name", "2-21 characters"),
    "stack-name-trailing-dash": ({"stack_name": "airflow-"}, "stack_name", "not ending with '-'"),
    "stack-name-a-boolean": ({"stack_name": False}, "stack_name", "must be a string"),
    "region-missing": ({"aws_region": ""}, "aws_region", "AWS region name"),
    "region-malformed": ({"aws_region": "mars-1"}, "aws_region", "AWS region name"),
    "region-unknown": ({"aws_region": "us-east-9"}, "aws_region", "not a region this botocore knows"),
    "reserved-tag-key": ({"extra_tags": {"aws:owner": "me"}}, "extra_tags", "reserved prefix"),
    "tag-value-not-a-string": ({"extra_tags": {"critical": True}}, "extra_tags", "tag values are strings"),
    "tag-value-malformed": ({"extra_tags": {"owner": "data<platform>"}}, "extra_tags", "value of 'owner'"),
    "too-many-tags": ({"extra_tags": {f"k{i}": "v" for i in range(48)}}, "extra_tags", "at most 47 fit"),
    "tags-a-list": ({"extra_tags": ["owner=me"]}, "extra_tags", "must be a mapping"),
    # database
    "db-instance-class-malformed": (
        {"database_instance_class": "t4g.micro"},
        "database_instance_class",
        "instance class",
    ),
    "db-instance-class-not-offered": (
        {"database_instance_class": "db.t4g.nano"},
        "database_instance_class",
        "does not offer in us-east-1",
    ),
    "db-engine-version-old": ({"database_engine_version": "9.6"}, "database_engine_version", "13 or later"),
    "db-engine-version-a-number": ({"database_engine_version": 17.1}, "database_engine_version", "must be a string"),
    "db-engine-version-not-offered": (
        {"database_engine_version": "17.99"},
        "database_engine_version",
        "does not offer for db.t4g.small",
    ),
    "db-backup-retention": ({"database_backup_retention_days": 1}, "database_backup_retention_days", "at least 7"),
    "db-storage-too-small": ({"database_allocated_storage": 5}, "database_allocated_storage", "at least 20"),
    "db-max-storage-below-110-percent": (
        {"database_allocated_storage": 100, "database_max_allocated_storage": 105},
        "database_max_allocated_storage",
        "at least 1.1 x database_allocated_storage",
    ),
    "db-storage-type": ({"database_storage_type": "ssd"}, "database_storage_type", "one of"),
    "db-name-starts-with-digit": ({"database_name": "1airflow"}, "database_name", "starting with a letter"),
    "db-multi-az-a-string": ({"database_multi_az": "yes"}, "database_multi_az", "must be a boolean"),
    # other roles
    "log-retention": ({"ecs_cluster_log_retention_days": 10}, "ecs_cluster_log_retention_days", "retention periods"),
    "namespace-name": ({"service_discovery_namespace": "Not A Domain"}, "service_discovery_namespace", "DNS domain"),
    "secrets-unknown-rotation": ({"secrets_rotate": ["ssh_key"]}, "secrets_rotate", "item 'ssh_key'"),
    "secrets-rotate-a-string": ({"secrets_rotate": "database"}, "secrets_rotate", "must be a list"),
    "secrets-recovery-window": ({"secrets_recovery_window_days": 3}, "secrets_recovery_window_days", "one of"),
    "kms-key-aws-managed": (
        {"secrets_kms_key_id": "alias/aws/secretsmanager"},
        "secrets_kms_key_id",
        "AWS managed key",
    ),
    "kms-key-missing": ({"secrets_kms_key_id": "alias/airflow-secrets"}, "secrets_kms_key_id", "no KMS key"),
    "image-without-tag": ({"airflow_image": "apache/airflow"}, "airflow_image", "explicit tag"),
    "image-latest": ({"airflow_image": "apache/airflow:latest"}, "airflow_image", "explicit tag"),
    "fargate-size": (
        {"airflow_nodes_worker_cpu": 256, "airflow_nodes_worker_memory": 8192},
        "airflow_nodes_worker_memory",
        "allowed 512, 1024, 2048 MiB",
    ),
    "fargate-cpu": ({"airflow_nodes_scheduler_cpu": 768}, "airflow_nodes_scheduler_cpu", "Fargate CPU size"),
    "negative-count": ({"airflow_nodes_worker_count": -1}, "airflow_nodes_worker_count", "at least 0"),
    "count-a-string": ({"airflow_nodes_api_server_count": "2"}, "airflow_nodes_api_server_count", "whole number"),
    "credential-in-environment": (
        {"airflow_extra_environment": {"AIRFLOW__SMTP__SMTP_PASSWORD": "x"}},
        "airflow_extra_environment",
        "looks like a credential",
    ),
    "environment-value-not-a-string": (
        {"airflow_extra_environment": {"AIRFLOW__CORE__PARALLELISM": 64}},
        "airflow_extra_environment",
        "ECS environment values are strings",
    ),
    "bucket-name-invalid": ({"airflow_data_bucket": "My_Data"}, "airflow_data_bucket", "3-63 characters"),
    "bucket-name-reserved-prefix": ({"airflow_dag_bucket": "xn--airflow-dags"}, "airflow_dag_bucket", "S3 reserves"),
    "buckets-the-same": (
        {"airflow_dag_bucket": "airflow-shared-bucket", "airflow_data_bucket": "airflow-shared-bucket"},
        "airflow_data_bucket",
        "the same bucket as airflow_dag_bucket",
    ),
    "retain-a-string": ({"airflow_retain_data_bucket": "true"}, "airflow_retain_data_bucket", "must be a boolean"),
    # the AwsEcsExecutor and its task roles
    "ecs-executor-switch-a-string": (
        {"airflow_ecs_executor_enabled": "yes"},
        "airflow_ecs_executor_enabled",
        "must be a boolean",
    ),
    "ecs-executor-size": (
        {"airflow_ecs_executor_cpu": 256, "airflow_ecs_executor_memory": 4096},
        "airflow_ecs_executor_memory",
        "allowed 512, 1024, 2048 MiB",
    ),
    "task-roles-not-a-list": ({"airflow_task_roles": {"name": "etl"}}, "airflow_task_roles", "must be a list"),
    "task-roles-name-pattern": (
        {"airflow_task_roles": [{"name": "ETL_team", "dags": ["books_etl"], "statements": []}]},
        "airflow_task_roles",
        "entry ETL_team: name must be 1-30 characters of a-z, 0-9 and hyphens",
    ),
    "task-roles-dags-not-a-list": (
        {"airflow_task_roles": [{"name": "etl", "dags": "books_etl", "statements": []}]},
        "airflow_task_roles",
        "entry etl: dags must be a non-empty list of DAG ids",
    ),
    "task-roles-statements-not-mappings": (
        {"airflow_task_roles": [{"name": "etl", "dags": ["books_etl"], "statements": ["s3:PutObject"]}]},
        "airflow_task_roles",
        "statements must be a list of IAM policy statements: mappings with Effect (Allow or Deny), Action and Resource",
    ),
    "task-roles-statement-allows-everything": (
        {
            "airflow_task_roles": [
                {"name": "etl", "dags": ["x"], "statements": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            ]
        },
        "airflow_task_roles",
        "none allowing every action (Action *)",
    ),
    "task-roles-dag-in-two-entries": (
        {
            "airflow_task_roles": [
                {"name": "etl", "dags": ["books_etl"], "statements": []},
                {"name": "reports", "dags": ["books_etl"], "statements": []},
            ]
        },
        "airflow_task_roles",
        "DAG books_etl in more than one entry",
    ),
    "rollout-timeout-too-short": ({"ecs_service_rollout_timeout": 5}, "ecs_service_rollout_timeout", "at least 60"),
    "alarm-email-invalid": ({"monitoring_alarm_emails": ["oncall"]}, "monitoring_alarm_emails", "an e-mail address"),
    "alarm-minutes-not-periods": (
        {"monitoring_queued_tasks_minutes": 12},
        "monitoring_queued_tasks_minutes",
        "a multiple of 5",
    ),
    "broker-timeout": ({"messaging_consumer_timeout_ms": 1000}, "messaging_consumer_timeout_ms", "at least 1800000"),
    "broker-backend-unknown": ({"broker_backend": "sqs"}, "broker_backend", "one of"),
    "amazonmq-micro-cluster": (
        {
            "broker_backend": "amazonmq",
            "messaging_amazonmq_deployment_mode": "CLUSTER_MULTI_AZ",
            "messaging_amazonmq_instance_type": "mq.t3.micro",
        },
        "messaging_amazonmq_instance_type",
        "one of",
    ),
    "amazonmq-without-quorum-queues": (
        {"broker_backend": "amazonmq", "messaging_amazonmq_engine_version": "3.12"},
        "messaging_amazonmq_engine_version",
        '"3.13" or later',
    ),
    "amazonmq-rotate-broker": (
        {"broker_backend": "amazonmq", "secrets_rotate": ["broker"]},
        "secrets_rotate",
        "may not list broker",
    ),
    "certificate-not-an-acm-arn": (
        {"load_balancer_certificate_arn": "arn:aws:iam::123456789012:server-certificate/ui"},
        "load_balancer_certificate_arn",
        "ACM certificate ARN",
    ),
    "certificate-in-another-region": (
        {"load_balancer_certificate_arn": CERTIFICATE.replace("us-east-1", "eu-west-1")},
        "load_balancer_certificate_arn",
        "in aws_region us-east-1",
    ),
    "certificate-does-not-exist": (
        {"load_balancer_certificate_arn": CERTIFICATE},
        "load_balancer_certificate_arn",
        "no ACM certificate",
    ),
    "domain-not-a-dns-name": (
        {"load_balancer_certificate_arn": CERTIFICATE, "load_balancer_domain_name": "Airflow_UI"},
        "load_balancer_domain_name",
        "lower-case DNS name",
    ),
    "domain-without-certificate": (
        {"load_balancer_domain_name": "airflow.example.com"},
        "load_balancer_domain_name",
        "without load_balancer_certificate_arn",
    ),
    "hosted-zone-without-domain": (
        {"load_balancer_hosted_zone_id": "Z0123456789ABCDEFGHIJ"},
        "load_balancer_hosted_zone_id",
        "without load_balancer_domain_name",
    ),
    "hosted-zone-id-with-prefix": (
        {
            "load_balancer_certificate_arn": CERTIFICATE,
            "load_balancer_domain_name": "airflow.example.com",
            "load_balancer_hosted_zone_id": "/hostedzone/Z0123456789ABCDEFGHIJ",
        },
        "load_balancer_hosted_zone_id",
        "without /hostedzone/",
    ),
    "tls-policy-unknown": ({"load_balancer_ssl_policy": "TLSv1.3-only"}, "load_balancer_ssl_policy", "security policy"),
    "health-check-path-relative": (
        {"load_balancer_health_check_path": "health"},
        "load_balancer_health_check_path",
        "absolute path",
    ),
    "worker-max-below-min": (
        {"airflow_nodes_worker_min_count": 3, "airflow_nodes_worker_max_count": 1},
        "airflow_nodes_worker_max_count",
        "at least airflow_nodes_worker_min_count (3)",
    ),
    "workers-never-run": (
        {"airflow_nodes_worker_min_count": 0, "airflow_nodes_worker_max_count": 0, "airflow_nodes_worker_count": 0},
        "airflow_nodes_worker_max_count",
        "no worker could ever run",
    ),
    "cpu-architecture-unknown": ({"ecs_cpu_architecture": "ARM"}, "ecs_cpu_architecture", "one of ['ARM64', 'X86_64']"),
    "build-of-another-architecture": (
        {"images_build_environment_type": "LINUX_CONTAINER"},
        "images_build_environment_type",
        "builds amd64 images but ecs_cpu_architecture is ARM64",
    ),
    # images
    "images-source-unknown": ({"images_source": "quay"}, "images_source", "one of ['ecr', 'docker-hub']"),
    "images-keep-zero": ({"images_keep": 0}, "images_keep", "at least 1"),
    "recipe-missing": ({"images_recipe_dir": "/nonexistent/image"}, "images_recipe_dir", "has no Dockerfile"),
    "recipe-for-another-airflow": (
        {"airflow_image": "apache/airflow:3.2.0"},
        "images_recipe_dir",
        "builds on apache/airflow:3.3.2 but airflow_image is apache/airflow:3.2.0",
    ),
    "recipe-lock-stale": (
        {"images_recipe_dir": str(STALE_RECIPE)},
        "images_recipe_dir",
        "requirements.txt changed since requirements.lock was made; run `make image-lock`",
    ),
    "image-digest-malformed": (
        {"airflow_image": "apache/airflow:3.3.2@sha256:abc"},
        "airflow_image",
        "malformed digest 'sha256:abc'",
    ),
    "broker-image-digest-malformed": (
        {"messaging_image": "rabbitmq:4.1.4-management@sha256:" + "G" * 64},
        "messaging_image",
        "malformed digest",
    ),
    "image-tag-and-digest-disagree": (
        {"images_source": "docker-hub", "airflow_image": f"{ECR_AIRFLOW}:3.3.2-0123456789ab@sha256:{'a' * 64}"},
        "airflow_image",
        "has no image tagged '3.3.2-0123456789ab'",
    ),
    # database connection budget (plugins/filter/capacity.py)
    "database-too-small-for-the-workers": (
        {"airflow_nodes_worker_max_count": 13},
        "database_instance_class",
        "the stack can open 186 PostgreSQL connections",
    ),
    "airflow-default-pools-exceed-the-database": (
        {"database_pool_size": 5, "database_max_overflow": 10},
        "database_instance_class",
        "database_pool_size + database_max_overflow at most",
    ),
    "pool-size-zero": ({"database_pool_size": 0}, "database_pool_size", "at least 1"),
}

# Cases whose answer needs the account (every other case is refused before any AWS call).
ACCOUNT_AWARE = {
    "more-azs-than-the-region",
    "db-instance-class-not-offered",
    "db-engine-version-not-offered",
    "kms-key-missing",
    "certificate-does-not-exist",
    "image-tag-and-digest-disagree",
}


def test_the_suite_covers_at_least_sixty_bad_inputs():
    assert len(BAD_INPUTS) >= 60


RESULT_LINE = re.compile(r"^(?:ok|changed|fatal|failed|skipping): \[([^\]]+)\]")
NEW_SECTION = re.compile(r"^(?:TASK|PLAY|RUNNING|included)\b")


def host_outputs(output: str) -> dict[str, str]:
    """What the play printed for each host: its result lines with the YAML under them, by host name."""
    found: dict[str, list[str]] = {}
    host = None
    for line in output.splitlines():
        result = RESULT_LINE.match(line)
        if result or NEW_SECTION.match(line):
            host = result[1] if result else None
        if host:
            found.setdefault(host, []).append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def run_cases(directory: Path, env: dict[str, str], cases: list[str], table: dict | None = None) -> PlayResult:
    """One site.yml run for many cases (of BAD_INPUTS, or `table`): each case is a host of the emulator inventory
    with its values as host vars (above every group_vars and role default, as -e would be), so one process judges
    them all."""
    directory.mkdir()
    (directory / "group_vars").symlink_to(ROOT / "inventories" / "emulator" / "group_vars")
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    hosts = {case: {**local, **(table or BAD_INPUTS)[case][0]} for case in cases}
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"airflow_ecs": {"hosts": hosts}}}}))
    # Ansible's own linear strategy: Mitogen serves every host of the same local connection from one
    # interpreter, where modules of several hosts at once (the account-aware cases) once deadlocked.
    return run_playbook("site.yml", {**env, "ANSIBLE_STRATEGY": "linear"}, args=["-i", str(inventory)], timeout=600)


@pytest.fixture(scope="module")
def judged(emulator, tmp_path_factory) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Every case in two runs on a blank account: those refused before any AWS call against an endpoint nobody
    answers (a later refusal would be the endpoint check's sentence instead of the variable's), the account-aware
    ones against the emulator. Returns the runs' recaps and outputs by case, and what the account holds after."""
    emulator.reset()
    workdir = tmp_path_factory.mktemp("bad-input")
    offline = [case for case in BAD_INPUTS if case not in ACCOUNT_AWARE]
    dead = {**emulator.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    runs = [
        run_cases(workdir / "offline", dead, offline),
        run_cases(workdir / "account", emulator.env(), sorted(ACCOUNT_AWARE)),
    ]
    recaps = {m["host"]: int(m["failed"]) for run in runs for m in RECAP.finditer(run.output)}
    outputs = {host: text for run in runs for host, text in host_outputs(run.output).items()}
    return recaps, outputs, leftover_resources(emulator)


@pytest.mark.parametrize(("case", "variable", "fragment"), [(k, v[1], v[2]) for k, v in BAD_INPUTS.items()],
                         ids=BAD_INPUTS.keys())  # fmt: skip
def test_bad_input_fails_before_any_resource_exists(judged, case, variable, fragment):
    recaps, outputs, leftovers = judged
    output = outputs.get(case, "")
    assert recaps.get(case) == 1, f"{case} did not fail: {output[-3000:]}"
    assert f"{variable}:" in output or f"{variable} is" in output, output[-3000:]
    assert " ".join(fragment.split()) in " ".join(output.split()), output[-3000:]  # the YAML callback wraps
    assert "Traceback" not in output, output[-3000:]
    assert "Cannot use the AWS endpoint" not in output, output[-3000:]
    assert leftovers == []


@pytest.mark.parametrize(
    ("quotas", "extra", "fragments"),
    [
        # A new account (no applied Fargate values: AWS's defaults, 6 vCPU each) holds the default stack
        # (tests/unit/test_capacity_filters.py), but not eight executor tasks more at once: 6.25 vCPU.
        ({"fargate/L-3032A538": None, "fargate/L-36FBB829": None}, {"airflow_ecs_executor_max_tasks": 8},
         ["Fargate On-Demand vCPU resource count (fargate L-3032A538, default value 6", "the stack can need 6.25",
          "request an increase to at least", "airflow_ecs_executor_max_tasks"]),
        # An account whose Spot quota was lowered below the workers' 4 x 1 vCPU.
        ({"fargate/L-36FBB829": 3}, {}, ["Fargate Spot vCPU resource count (fargate L-36FBB829, applied value 3",
                                         "the stack can need 4", "airflow_nodes_worker_max_count"]),
    ],
    ids=["new-account-more-executor-tasks", "spot-quota-lowered"],
)  # fmt: skip
def test_quota_too_small_is_refused_before_any_resource_exists(tmp_path, quotas, extra, fragments):
    """The account's quotas are the emulator's (embedded_aws/service_quotas.py), so each case has its own."""
    import json  # noqa: PLC0415

    from emulator import start_emulator  # noqa: PLC0415

    server = start_emulator(tmp_path / "moto.log", env={"EMBEDDED_AWS_SERVICE_QUOTAS": json.dumps(quotas)})
    try:
        result = run_playbook("site.yml", server.env(), extra_vars=extra)
        assert result.returncode != 0, result.output[-3000:]
        output = " ".join(result.output.split())
        for fragment in fragments:
            assert fragment in output, result.output[-3000:]
        assert "Traceback" not in result.output, result.output[-3000:]
        assert leftover_resources(server) == []
    finally:
        server.stop()


def test_unreachable_endpoint_fails_with_one_sentence(clean_emulator):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_playbook("site.yml", {**clean_emulator.env(), "AWS_ENDPOINT_URL": dead})
    assert result.returncode != 0
    assert f"Cannot use the AWS endpoint: nothing answers at {dead}" in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
    assert leftover_resources(clean_emulator) == []


def test_endpoint_that_is_not_aws_fails_with_one_sentence(clean_emulator):
    # The emulator's own dashboard path answers HTML, as any web server that is not an AWS API would.
    not_aws = f"{clean_emulator.url}/moto-api/"
    result = run_playbook("site.yml", {**clean_emulator.env(), "AWS_ENDPOINT_URL": not_aws})
    assert result.returncode != 0
    assert "answered, but not as an AWS API does" in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
    assert leftover_resources(clean_emulator) == []


def test_endpoint_with_a_bad_port_fails_with_one_sentence(clean_emulator):
    result = run_playbook("site.yml", {**clean_emulator.env(), "AWS_ENDPOINT_URL": "http://127.0.0.1:99999"})
    assert result.returncode != 0
    assert "Cannot use the AWS endpoint: the endpoint URL 'http://127.0.0.1:99999' is not valid" in result.output, (
        result.output[-3000:]
    )
    assert "Traceback" not in result.output


def test_missing_profile_fails_with_one_sentence(clean_emulator):
    env = {**clean_emulator.env(), "AWS_PROFILE": "no-such-profile"}
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = ""
    result = run_playbook("site.yml", env, args=["-i", "inventories/aws"])
    assert result.returncode != 0
    assert "the AWS profile 'no-such-profile' (AWS_PROFILE) is not in ~/.aws/config" in result.output, result.output[
        -3000:
    ]
    assert leftover_resources(clean_emulator) == []


def test_missing_credentials_fail_with_a_clear_message(clean_emulator, tmp_path):
    env = {**clean_emulator.env(), "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = ""
    result = run_playbook("site.yml", env, args=["-i", "inventories/aws"])
    assert result.returncode != 0
    assert "no AWS credentials were found" in result.output, result.output[-3000:]
    assert leftover_resources(clean_emulator) == []


def test_run_from_another_directory_says_where_to_run(clean_emulator, tmp_path):
    env = {key: value for key, value in base_env(clean_emulator.env()).items() if key != "ANSIBLE_CONFIG"}
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), str(ROOT / "site.yml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "No host is in group airflow_ecs, so nothing would run" in output and f"Run from {ROOT}" in output, output
    assert leftover_resources(clean_emulator) == []


# A domain name the account's certificate or hosted zones do not fit: judged on an account holding a certificate
# for airflow.example.com (self-signed, imported), the public zone example.org and a private zone example.com.
DOMAIN = "airflow.example.com"


def domain_cases(certificate: str, zones: dict[str, str]) -> dict[str, tuple[dict, str, str]]:
    named = {"load_balancer_certificate_arn": certificate, "load_balancer_domain_name": DOMAIN}
    return {
        "domain-the-certificate-does-not-cover": (
            {
                **named,
                "load_balancer_domain_name": "ui.airflow.example.com",
                "load_balancer_hosted_zone_id": zones["org"],
            },
            "load_balancer_domain_name",
            "which the certificate",
        ),
        "hosted-zone-not-a-parent": (
            {**named, "load_balancer_hosted_zone_id": zones["org"]},
            "load_balancer_hosted_zone_id",
            "the zone example.org, which is not load_balancer_domain_name 'airflow.example.com' nor a parent of it",
        ),
        "hosted-zone-private": (
            {**named, "load_balancer_hosted_zone_id": zones["private"]},
            "load_balancer_hosted_zone_id",
            "a private zone",
        ),
        "hosted-zone-missing": (
            {**named, "load_balancer_hosted_zone_id": "Z0123456789ABCDEFGHIJ"},
            "load_balancer_hosted_zone_id",
            "no hosted zone 'Z0123456789ABCDEFGHIJ' exists",
        ),
        "no-public-zone-holds-the-domain": (named, "load_balancer_domain_name", "no public hosted zone"),
    }


def test_a_domain_the_certificate_or_the_zones_do_not_fit_is_refused_in_preflight(emulator, tmp_path, judged):
    emulator.reset()  # after `judged`, which reads the blank account
    certificate = import_self_signed_certificate(emulator, DOMAIN)
    route53 = emulator.client("route53")
    vpc = emulator.client("ec2").create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    zones = {
        "org": route53.create_hosted_zone(Name="example.org", CallerReference="org")["HostedZone"]["Id"],
        "private": route53.create_hosted_zone(
            Name="example.com",
            CallerReference="private",
            HostedZoneConfig={"PrivateZone": True},
            VPC={"VPCRegion": "us-east-1", "VPCId": vpc},
        )["HostedZone"]["Id"],
    }
    cases = domain_cases(certificate, {key: zone.rsplit("/", 1)[-1] for key, zone in zones.items()})
    run = run_cases(tmp_path / "domain", emulator.env(), sorted(cases), cases)
    recaps = {m["host"]: int(m["failed"]) for m in RECAP.finditer(run.output)}
    outputs = host_outputs(run.output)
    for case, (_, variable, fragment) in cases.items():
        output = " ".join(outputs.get(case, "").split())
        assert recaps.get(case) == 1, f"{case} did not fail: {output[-3000:]}"
        assert f"{variable}:" in output and " ".join(fragment.split()) in output, (case, output[-3000:])
    route53.delete_hosted_zone(Id=zones["org"])
    route53.delete_hosted_zone(Id=zones["private"])
    emulator.client("ec2").delete_vpc(VpcId=vpc)
    assert leftover_resources(emulator) == []
