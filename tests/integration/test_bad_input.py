"""Invalid inputs stop the play with one clear message before any resource exists."""

from __future__ import annotations

import pytest
from ansible_runner import run_playbook
from emulator import free_port
from stack_inventory import leftover_resources

BAD_INPUTS = {
    "cidr-not-a-network": ({"network_vpc_cidr": "10.40.0.0/33"}, "network_vpc_cidr '10.40.0.0/33' must be"),
    "cidr-host-bits": ({"network_vpc_cidr": "10.40.0.1/16"}, "network_vpc_cidr '10.40.0.1/16' must be"),
    "vpc-too-large": ({"network_vpc_cidr": "10.0.0.0/8"}, "prefix from /16 to /24"),
    "subnet-outside-vpc": (
        {"network_public_subnet_cidrs": ["10.99.0.0/24", "10.40.1.0/24"]},
        "outside the VPC: ['10.99.0.0/24']",
    ),
    "subnets-overlap": (
        {"network_public_subnet_cidrs": ["10.40.0.0/24", "10.40.0.0/25"]},
        "overlapping: [['10.40.0.0/24', '10.40.0.0/25']]",
    ),
    "subnet-count-differs-from-az-count": (
        {"network_private_subnet_cidrs": ["10.40.100.0/24"]},
        "must each list exactly network_az_count",
    ),
    "one-az": ({"network_az_count": 1}, "network_az_count '1' must be a whole number from 2 to 6"),
    "nine-azs": ({"network_az_count": 9}, "network_az_count '9' must be a whole number from 2 to 6"),
    "more-azs-than-the-region": (
        {"aws_region": "eu-west-1", "network_az_count": 4},
        "region eu-west-1 offers only 3 AZs",
    ),
    "stack-name-uppercase": ({"stack_name": "Airflow_Prod"}, "stack_name 'Airflow_Prod' must be"),
    "stack-name-too-long": ({"stack_name": "a" * 22}, "must be 2-21 characters"),
    "region-missing": ({"aws_region": ""}, "aws_region '' is not an AWS region name"),
    "region-unknown": ({"aws_region": "mars-1"}, "aws_region 'mars-1' is not an AWS region name"),
    "reserved-tag-key": ({"extra_tags": {"aws:owner": "me"}}, "extra_tags must map keys"),
    "alb-cidr-invalid": ({"network_alb_allowed_cidrs": ["everyone"]}, "network_alb_allowed_cidrs must list"),
    "db-instance-class": ({"database_instance_class": "t4g.micro"}, "database_instance_class must look like"),
    "db-engine-version": ({"database_engine_version": "9.6"}, "a PostgreSQL version >= 13"),
    "db-backup-retention": ({"database_backup_retention_days": 1}, "database_backup_retention_days 7-35"),
    "db-storage-too-small": ({"database_allocated_storage": 5}, "database_allocated_storage 20-65536"),
    "log-retention": ({"ecs_cluster_log_retention_days": 10}, "ecs_cluster_log_retention_days must be one of"),
    "namespace-name": ({"service_discovery_namespace": "Not A Domain"}, "must be a DNS domain name"),
    "secrets-unknown-rotation": ({"secrets_rotate": ["ssh_key"]}, "secrets_rotate may only list"),
    "image-without-tag": ({"airflow_image": "apache/airflow"}, "airflow_image needs an explicit tag"),
    "image-latest": ({"airflow_image": "apache/airflow:latest"}, "airflow_image needs an explicit tag"),
    "fargate-size": ({"airflow_nodes_worker_cpu": 256, "airflow_nodes_worker_memory": 8192}, "a Fargate task size"),
    "negative-count": ({"airflow_nodes_worker_count": -1}, "airflow_nodes_worker_count must be a whole number >= 0"),
    "credential-in-environment": (
        {"airflow_extra_environment": {"AIRFLOW__SMTP__SMTP_PASSWORD": "x"}},
        "no credentials",
    ),
    "broker-timeout": ({"messaging_consumer_timeout_ms": 1000}, "messaging_consumer_timeout_ms must be at least"),
    "broker-backend-unknown": ({"broker_backend": "sqs"}, "broker_backend must be"),
    "amazonmq-micro-cluster": (
        {
            "broker_backend": "amazonmq",
            "messaging_amazonmq_deployment_mode": "CLUSTER_MULTI_AZ",
            "messaging_amazonmq_instance_type": "mq.t3.micro",
        },
        "not mq.t3.micro for a cluster",
    ),
    "amazonmq-rotate-broker": (
        {"broker_backend": "amazonmq", "secrets_rotate": ["broker"]},
        "the broker secret cannot be rotated through secrets_rotate",
    ),
    "certificate-not-an-acm-arn": (
        {"load_balancer_certificate_arn": "arn:aws:iam::123456789012:server-certificate/ui"},
        "load_balancer_certificate_arn empty or an ACM certificate ARN",
    ),
    "tls-policy-unknown": ({"load_balancer_ssl_policy": "TLSv1.3-only"}, "an ELBSecurityPolicy-* name"),
    "worker-max-below-min": (
        {"airflow_nodes_worker_min_count": 3, "airflow_nodes_worker_max_count": 1},
        "min <= max <= min + 19 (got 3 and 1)",
    ),
}


@pytest.mark.parametrize(("extra_vars", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_fails_before_any_resource_exists(clean_emulator, extra_vars, message):
    result = run_playbook("site.yml", clean_emulator.env(), extra_vars=extra_vars)
    assert result.returncode != 0
    assert message in result.output, result.output[-3000:]
    assert leftover_resources(clean_emulator) == []


def test_unreachable_endpoint_fails_with_a_clear_message(clean_emulator):
    dead = f"http://127.0.0.1:{free_port()}"
    result = run_playbook("site.yml", {**clean_emulator.env(), "AWS_ENDPOINT_URL": dead})
    assert result.returncode != 0
    assert f"Cannot use the AWS endpoint {dead}" in result.output, result.output[-3000:]
    assert leftover_resources(clean_emulator) == []


def test_missing_credentials_fail_with_a_clear_message(clean_emulator, tmp_path):
    env = {**clean_emulator.env(), "HOME": str(tmp_path), "AWS_CONFIG_FILE": str(tmp_path / "none")}
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = ""
    result = run_playbook("site.yml", env, args=["-i", "inventories/aws"])
    assert result.returncode != 0
    assert "Cannot use the AWS endpoint" in result.output and "credentials" in result.output, result.output[-3000:]
    assert leftover_resources(clean_emulator) == []
