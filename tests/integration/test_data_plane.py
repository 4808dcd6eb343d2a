"""Secrets, database, Cloud Map, cluster and broker of the deployed stack, read through the AWS API."""

from __future__ import annotations

import json
import re

import pytest
from cryptography.fernet import Fernet

pytestmark = pytest.mark.xdist_group("stack")

SECRET_KEYS = ["database", "broker", "fernet-key", "jwt-secret", "api-secret-key", "admin", "flower"]
CONNECTION_SECRETS = ["sql-alchemy-conn", "broker-url", "result-backend", "flower-basic-auth"]


@pytest.fixture(scope="module")
def secret_values(deployed) -> dict[str, str]:
    sm = deployed.emulator.client("secretsmanager")
    return {s["Name"]: sm.get_secret_value(SecretId=s["Name"])["SecretString"] for s in sm.list_secrets()["SecretList"]}


def test_one_secret_per_purpose(secret_values):
    assert sorted(secret_values) == sorted(f"airflow/{key}" for key in SECRET_KEYS + CONNECTION_SECRETS)


def test_generated_secrets_have_their_form(secret_values):
    Fernet(secret_values["airflow/fernet-key"].encode())  # raises on an invalid key
    assert len(secret_values["airflow/jwt-secret"]) >= 86  # 64 random bytes, URL-safe base64
    for key in ("database", "broker", "admin", "flower"):
        credentials = json.loads(secret_values[f"airflow/{key}"])
        assert set(credentials) == {"username", "password"}
        assert len(credentials["password"]) >= 24


def test_reruns_never_regenerate_a_secret(deployed):
    sm = deployed.emulator.client("secretsmanager")
    for key in SECRET_KEYS:
        versions = sm.list_secret_version_ids(SecretId=f"airflow/{key}")["Versions"]
        assert len(versions) == 1, f"airflow/{key} has {len(versions)} versions after three deploys"


def test_no_secret_value_appears_in_verbose_play_output(deployed, secret_values):
    output = deployed.first.output + deployed.second.output + deployed.checked.output + deployed.resized.output
    for name, value in secret_values.items():
        parts = [value]
        if value.startswith("{"):
            parts = [v for v in json.loads(value).values() if len(v) >= 16]
        for part in parts:
            assert part not in output, f"a value of secret {name} is in the play output"


def test_database_is_encrypted_private_and_backed_up(deployed):
    rds = deployed.emulator.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier="airflow-metadata")["DBInstances"][0]
    assert db["Engine"] == "postgres"
    assert db["StorageEncrypted"] is True
    assert db["PubliclyAccessible"] is False
    assert db["BackupRetentionPeriod"] >= 7
    groups = [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]]
    names = deployed.emulator.client("ec2").describe_security_groups(GroupIds=groups)["SecurityGroups"]
    assert [g["GroupName"] for g in names] == ["airflow-database"]


def test_db_subnet_group_spans_the_private_subnets_of_every_az(deployed):
    group = deployed.emulator.client("rds").describe_db_subnet_groups(DBSubnetGroupName="airflow-metadata")
    subnets = group["DBSubnetGroups"][0]["Subnets"]
    assert len({s["SubnetAvailabilityZone"]["Name"] for s in subnets}) == 2
    ids = [s["SubnetIdentifier"] for s in subnets]
    described = deployed.emulator.client("ec2").describe_subnets(SubnetIds=ids)["Subnets"]
    tiers = {t["Value"] for s in described for t in s["Tags"] if t["Key"] == "airflow-ecs:tier"}
    assert tiers == {"private"}


def test_cloud_map_namespace_is_bound_to_the_vpc_and_has_broker_and_api_server(deployed):
    sd = deployed.emulator.client("servicediscovery")
    namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == "airflow.internal"]
    assert len(namespaces) == 1 and namespaces[0]["Type"] == "DNS_PRIVATE"
    services = {s["Name"] for s in sd.list_services()["Services"]}
    assert services == {"rabbitmq", "api-server"}
    vpc = deployed.emulator.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["airflow-vpc"]}])
    zone_id = namespaces[0]["Properties"]["DnsProperties"]["HostedZoneId"].split("/")[-1]
    zone = deployed.emulator.client("route53").get_hosted_zone(Id=zone_id)
    assert zone["HostedZone"]["Config"]["PrivateZone"] is True
    assert vpc["Vpcs"], "the stack's VPC is missing"


def test_cluster_has_fargate_and_spot_capacity(deployed):
    cluster = deployed.emulator.client("ecs").describe_clusters(clusters=["airflow"], include=["SETTINGS", "TAGS"])
    cluster = cluster["clusters"][0]
    assert cluster["status"] == "ACTIVE"
    assert set(cluster["capacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    assert {"key": "airflow-ecs:stack", "value": "airflow"} in cluster["tags"]


def test_execution_role_reads_only_this_stacks_secrets(deployed):
    iam = deployed.emulator.client("iam")
    policy = iam.get_role_policy(RoleName="airflow-ecs-execution", PolicyName="read-stack-secrets")["PolicyDocument"]
    resources = [r for statement in policy["Statement"] for r in [statement["Resource"]]]
    assert resources == ["arn:aws:secretsmanager:us-east-1:123456789012:secret:airflow/*"]


def test_one_log_group_per_component(deployed):
    groups = deployed.emulator.client("logs").describe_log_groups(logGroupNamePrefix="/ecs/airflow/")["logGroups"]
    names = {g["logGroupName"].rsplit("/", 1)[-1] for g in groups}
    assert names >= {"rabbitmq", "migrate", "api-server", "scheduler", "dag-processor", "triggerer", "worker", "flower"}
    assert all(g["retentionInDays"] == 30 for g in groups)


def test_broker_service_is_private_registered_in_cloud_map_and_uses_secrets(deployed):
    ecs = deployed.emulator.client("ecs")
    service = ecs.describe_services(cluster="airflow", services=["airflow-rabbitmq"])["services"][0]
    assert service["serviceRegistries"], "the broker is not registered in Cloud Map"
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    assert network["assignPublicIp"] == "DISABLED"
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
    container = definition["containerDefinitions"][0]
    assert {s["name"] for s in container["secrets"]} == {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"}
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert re.search(r"consumer_timeout (\d+)", env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"])
    assert int(re.search(r"consumer_timeout (\d+)", env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]).group(1)) > 1800000
    assert sorted(p["containerPort"] for p in container["portMappings"]) == [5672, 15672]
