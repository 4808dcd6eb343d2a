"""Security audit of the deployed stack (issue #10), through the AWS API.

The audit itself is in tests/security_audit.py. Each check runs once against the shared deployment
(must find nothing) and again after the deployment was broken the way an operator or a bad variable
would break it (must name exactly the broken resource). Every break is undone in a `finally`, and the
`restored` fixture re-runs the whole audit afterwards, so the other tests reading this deployment see
it as deployed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import NamedTuple

import pytest
import security_audit as audit
from ansible_runner import run_module_with_output

pytestmark = pytest.mark.xdist_group("deployed_stack")

STACK = "airflow"
# The default stack's services (the scheduler's task runs the dag-processor and the triggerer; no Flower).
AIRFLOW_SERVICES = [f"{STACK}-{n}" for n in ["api-server", "scheduler", "worker"]]
ALL_SERVICES = sorted([*AIRFLOW_SERVICES, f"{STACK}-rabbitmq"])
DATABASE = f"{STACK}-metadata"


class Clients:
    """boto3 clients of the deployment's emulator, one per service."""

    def __init__(self, emulator):
        self._emulator = emulator
        self._clients: dict[str, object] = {}

    def __getattr__(self, service: str):
        if service.startswith("_"):
            raise AttributeError(service)
        if service not in self._clients:
            self._clients[service] = self._emulator.client(service)
        return self._clients[service]


@pytest.fixture(scope="module")
def aws(deployed) -> Clients:
    return Clients(deployed.emulator)


AUDITS = {
    "ingress": lambda aws: audit.ingress_from_outside_the_vpc(aws.ec2, aws.elbv2, STACK),
    "reachable": lambda aws: audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK),
    "task definitions": lambda aws: audit.plaintext_credentials_in_task_definitions(aws.ecs, STACK),
    "database": lambda aws: audit.database_weaknesses(aws.rds, STACK),
    "buckets": lambda aws: audit.bucket_weaknesses(aws.s3, STACK),
    "iam": lambda aws: audit.broad_iam_grants(aws.iam, aws.ecs, STACK),
    "task roles": lambda aws: audit.shared_or_broad_task_roles(aws.iam, aws.ecs, aws.s3, STACK),
    "secrets": lambda aws: audit.secrets_beyond_use(aws.iam, aws.ecs, aws.secretsmanager, STACK),
    "trust": lambda aws: audit.task_role_trust_without_source(aws.iam, aws.ecs, STACK),
    "capacity": lambda aws: audit.spot_only_services(aws.ecs, STACK),
}


def restores(*checks: str):
    """Marks a test that breaks the deployment: after it (and its `finally`), these checks find nothing again."""
    assert set(checks) <= set(AUDITS), checks

    def mark(test):
        test.restored_checks = checks
        return pytest.mark.usefixtures("restored")(test)

    return mark


@pytest.fixture
def restored(request, aws) -> Iterator[None]:
    yield
    checks = request.function.restored_checks
    leftovers = {check: found for check in checks if (found := AUDITS[check](aws))}
    assert not leftovers, f"the deployment was not restored: {leftovers}"


def _group(aws: Clients, name: str) -> dict:
    groups = aws.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [name]}, {"Name": f"tag:{audit.STACK_TAG}", "Values": [STACK]}]
    )["SecurityGroups"]
    assert len(groups) == 1, f"security group {name} not found once: {groups}"
    return groups[0]


def _subnet_ids(aws: Clients, tier: str) -> list[str]:
    subnets = aws.ec2.describe_subnets(
        Filters=[
            {"Name": f"tag:{audit.STACK_TAG}", "Values": [STACK]},
            {"Name": "tag:airflow-ecs:tier", "Values": [tier]},
        ]
    )["Subnets"]
    return sorted(s["SubnetId"] for s in subnets)


# --- The deployment as deployed: every check finds nothing.
def test_no_security_group_admits_the_internet_except_the_alb_on_its_listener_ports(aws):
    # The internet: 0.0.0.0/0, ::/0 or any other range outside the VPC.
    assert audit.ingress_from_outside_the_vpc(aws.ec2, aws.elbv2, STACK) == []


def test_broker_flower_database_and_api_server_are_not_reachable_from_the_internet(aws):
    assert audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK) == []


def test_no_task_definition_has_a_credential_in_its_environment(aws):
    assert audit.plaintext_credentials_in_task_definitions(aws.ecs, STACK) == []


def test_database_is_encrypted_private_and_keeps_a_week_of_backups(aws):
    assert audit.database_weaknesses(aws.rds, STACK) == []


def test_buckets_block_public_access_are_encrypted_deny_plain_http_and_the_dag_bucket_is_versioned(aws):
    assert audit.bucket_weaknesses(aws.s3, STACK) == []


def test_no_policy_of_ours_grants_wildcards_on_s3_secrets_or_logs(aws):
    assert audit.broad_iam_grants(aws.iam, aws.ecs, STACK) == []


def test_each_component_has_a_task_role_of_its_own_and_only_the_workers_write_pipeline_data(aws):
    assert audit.shared_or_broad_task_roles(aws.iam, aws.ecs, aws.s3, STACK) == []


def test_each_execution_role_reads_only_the_secrets_its_task_definition_names(aws):
    assert audit.secrets_beyond_use(aws.iam, aws.ecs, aws.secretsmanager, STACK) == []


def test_every_task_role_trusts_only_ecs_tasks_of_this_account(aws):
    assert audit.task_role_trust_without_source(aws.iam, aws.ecs, STACK) == []


def test_no_service_runs_on_fargate_spot_without_an_on_demand_base(aws):
    assert audit.spot_only_services(aws.ecs, STACK) == []


def test_no_generated_secret_value_appears_in_verbose_play_output(deployed, aws):
    # Every run of the deployment: from zero with -v, the no-op re-run, check mode with --diff, the resize.
    output = deployed.first.output + deployed.second.output + deployed.checked.output + deployed.resized.output
    assert audit.secret_values_in_output(aws.secretsmanager, STACK, output) == []


def test_the_audit_covers_the_whole_stack(aws):
    """Guards against an audit passing because it found nothing to look at."""
    assert sorted(s["serviceName"] for s in audit._stack_services(aws.ecs, STACK)) == ALL_SERVICES
    assert [db["DBInstanceIdentifier"] for db in audit._stack_db_instances(aws.rds, STACK)] == [DATABASE]
    assert sorted(tags[audit.BUCKET_PURPOSE_TAG] for _, tags in audit._stack_buckets(aws.s3, STACK)) == ["dags", "data"]
    families = {arn.rsplit("/", 1)[-1].split(":")[0] for arn in audit._stack_task_definition_arns(aws.ecs, STACK)}
    assert families == {*ALL_SERVICES, f"{STACK}-migrate", f"{STACK}-task"}  # the ECS executor's one-off task
    families = ["api-server", "scheduler", "worker", "rabbitmq", "migrate", "task"]
    roles = set(audit._stack_role_names(aws.iam, aws.ecs, STACK)) - {f"{STACK}-broker-task"}  # with a durable broker
    assert roles == {
        *(f"{STACK}-{component}-task" for component in ["api-server", "scheduler", "worker"]),
        *(f"{STACK}-{family}-execution" for family in families),  # one execution role per task definition
        f"{STACK}-image-build",
        f"{STACK}-task",  # the ECS executor's default task role
    }
    definitions = audit._current_task_definitions(aws.ecs, STACK)
    assert sorted(d["family"] for d in definitions) == sorted(f"{STACK}-{family}" for family in families)
    groups = {g["GroupName"] for g in audit._stack_security_groups(aws.ec2, STACK)}
    assert groups >= {f"{STACK}-{tier}" for tier in ["alb", "airflow", "broker", "database"]}
    secrets = [s for s in aws.secretsmanager.list_secrets()["SecretList"] if s["Name"].startswith(f"{STACK}/")]
    assert len(secrets) >= 7


# --- Security groups: a rule added by hand (or by a bad network variable).
class RuleCase(NamedTuple):
    group: str  # security group name
    port: int
    cidr: str
    outside: bool  # named by ingress_from_outside_the_vpc
    reachable: list[str]  # resources named by internet_reachable_internals


AIRFLOW_NODES = [f"ecs service {s}" for s in AIRFLOW_SERVICES]
RULE_CASES = [
    # RabbitMQ, its management port and PostgreSQL open to the world: both checks name them.
    RuleCase(f"{STACK}-broker", 15672, "0.0.0.0/0", True, [f"ecs service {STACK}-rabbitmq"]),
    RuleCase(f"{STACK}-broker", 5672, "::/0", True, [f"ecs service {STACK}-rabbitmq"]),
    RuleCase(f"{STACK}-database", 5432, "0.0.0.0/0", True, [f"db instance {DATABASE}"]),
    # Flower (and so every Airflow node: they share the group) opened to one office range on the internet.
    RuleCase(f"{STACK}-airflow", 5555, "203.0.113.0/24", True, AIRFLOW_NODES),
    # The api-server opened to the world next to its rule for the ALB.
    RuleCase(f"{STACK}-airflow", 8080, "0.0.0.0/0", True, AIRFLOW_NODES),
    # The whole VPC range on the database: not the internet, but an internal tier must name its callers
    # by security group, never by CIDR.
    RuleCase(f"{STACK}-database", 5432, "10.40.0.0/16", False, [f"db instance {DATABASE}"]),
    # The ALB may admit the world on its listener port 80, not on another port...
    RuleCase(f"{STACK}-alb", 22, "0.0.0.0/0", True, []),
    # ...and any range (network_alb_allowed_cidrs) on the listener port: nothing to name.
    RuleCase(f"{STACK}-alb", 80, "198.51.100.0/24", False, []),
]


@restores("ingress", "reachable")
@pytest.mark.parametrize("case", RULE_CASES, ids=[f"{c.group}-{c.port}-{c.cidr}" for c in RULE_CASES])
def test_a_cidr_rule_on_a_security_group_is_named(aws, case: RuleCase):
    group = _group(aws, case.group)
    before = sorted(json.dumps(rule, sort_keys=True) for rule in group["IpPermissions"])
    cidr = case.cidr
    ranges = {"Ipv6Ranges": [{"CidrIpv6": cidr}]} if ":" in cidr else {"IpRanges": [{"CidrIp": cidr}]}
    permission = {"IpProtocol": "tcp", "FromPort": case.port, "ToPort": case.port, **ranges}
    label = f"security group {case.group} ({group['GroupId']}) admits {cidr} on tcp/{case.port}"
    aws.ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[permission])
    try:
        found = audit.ingress_from_outside_the_vpc(aws.ec2, aws.elbv2, STACK)
        assert found == ([label] if case.outside else [])
        found = audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK)
        assert sorted(found) == sorted(f"{resource}: {label}" for resource in case.reachable)
    finally:
        aws.ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[permission])
    after = sorted(json.dumps(rule, sort_keys=True) for rule in _group(aws, case.group)["IpPermissions"])
    assert after == before, "the group's own rules did not survive the revoke"


# --- Services and the database: public IPs and public subnets.
def _update_network(aws: Clients, service: str, change) -> dict:
    """Apply `change` to the service's awsvpcConfiguration; returns the original networkConfiguration."""
    [described] = aws.ecs.describe_services(cluster=STACK, services=[service])["services"]
    original = described["networkConfiguration"]
    network = copy.deepcopy(original)
    change(network["awsvpcConfiguration"])
    aws.ecs.update_service(cluster=STACK, service=service, networkConfiguration=network)
    return original


@restores("reachable")
def test_a_service_with_a_public_ip_is_named(aws):
    service = f"{STACK}-worker"
    original = _update_network(aws, service, lambda net: net.update(assignPublicIp="ENABLED"))
    try:
        found = audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK)
        assert found == [f"ecs service {service}: assignPublicIp ENABLED"]
    finally:
        aws.ecs.update_service(cluster=STACK, service=service, networkConfiguration=original)


@restores("reachable")
def test_a_service_in_public_subnets_is_named(aws):
    service = f"{STACK}-rabbitmq"
    public = _subnet_ids(aws, "public")
    original = _update_network(aws, service, lambda net: net.update(subnets=public))
    try:
        found = audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK)
        assert found == [f"ecs service {service}: runs in public subnet {s}" for s in public]
    finally:
        aws.ecs.update_service(cluster=STACK, service=service, networkConfiguration=original)


@restores("reachable")
def test_private_subnets_routed_to_the_internet_gateway_expose_every_service_and_the_database(aws):
    """The private route table's default route pointed at the internet gateway instead of the NAT gateway.

    (The database's subnets are made public through their route table, as an operator's routing mistake
    would.)
    """
    private = _subnet_ids(aws, "private")
    [table] = aws.ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": private}])[
        "RouteTables"
    ]
    [default] = [r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    [igw] = aws.ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [table["VpcId"]]}])[
        "InternetGateways"
    ]
    aws.ec2.replace_route(
        RouteTableId=table["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw["InternetGatewayId"]
    )
    try:
        found = audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK)
        [db] = aws.rds.describe_db_instances(DBInstanceIdentifier=DATABASE)["DBInstances"]
        db_subnets = sorted(s["SubnetIdentifier"] for s in db["DBSubnetGroup"]["Subnets"])
        services = aws.ecs.describe_services(cluster=STACK, services=ALL_SERVICES)["services"]
        expected = [
            f"ecs service {s['serviceName']}: runs in public subnet {subnet}"
            for s in sorted(services, key=lambda s: s["serviceArn"])
            for subnet in s["networkConfiguration"]["awsvpcConfiguration"]["subnets"]
        ] + [f"db instance {DATABASE}: subnet group has public subnet {subnet}" for subnet in db_subnets]
        assert sorted(found) == sorted(expected)
        assert db_subnets == private
    finally:
        aws.ec2.replace_route(
            RouteTableId=table["RouteTableId"],
            DestinationCidrBlock="0.0.0.0/0",
            **{key: default[key] for key in ("NatGatewayId", "NetworkInterfaceId") if key in default},
        )
    [table_after] = aws.ec2.describe_route_tables(RouteTableIds=[table["RouteTableId"]])["RouteTables"]
    assert table_after["Routes"] == table["Routes"]


# --- Task definitions: a credential passed in `environment` (e.g. through airflow_extra_environment).
LEAKY_ENVIRONMENT = [
    {"name": "AIRFLOW__SMTP__SMTP_PASSWORD", "value": "not-a-real-password"},
    {"name": "AIRFLOW_CONN_METADATA", "value": "postgresql://airflow:not-a-real-password@db.example:5432/airflow"},
    {"name": "AIRFLOW_CONN_WAREHOUSE", "value": json.dumps({"conn_type": "postgres", "password": "not-real"})},
    {"name": "AWS_SECRET_ACCESS_KEY", "value": "not-a-real-key"},
]


@restores("task definitions", "iam")
def test_a_task_definition_revision_with_a_credential_in_environment_is_named(aws):
    family = f"{STACK}-worker"  # read by the tests through the service's pinned revision, never by family
    current = aws.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    registration = {
        key: copy.deepcopy(current[key])
        for key in [
            "family",
            "containerDefinitions",
            "cpu",
            "memory",
            "networkMode",
            "requiresCompatibilities",
            "executionRoleArn",
            "taskRoleArn",
            "runtimePlatform",
        ]
        if key in current
    }
    container = registration["containerDefinitions"][0]
    container["environment"] += LEAKY_ENVIRONMENT
    leaky = aws.ecs.register_task_definition(**registration)["taskDefinition"]
    try:
        found = audit.plaintext_credentials_in_task_definitions(aws.ecs, STACK)
        label = f"task definition {family}:{leaky['revision']} container {container['name']}"
        assert found == [
            f"{label}: AIRFLOW__SMTP__SMTP_PASSWORD (credential-like name)",
            f"{label}: AIRFLOW_CONN_METADATA (URL with a password)",
            f"{label}: AIRFLOW_CONN_WAREHOUSE (JSON with a credential field)",
            f"{label}: AWS_SECRET_ACCESS_KEY (credential-like name)",
        ]
        assert "not-a-real" not in " ".join(found), "an offender description quotes the value"
    finally:
        # Deregister and delete: the emulator (unlike AWS) answers a family name with its latest revision
        # even when that one is INACTIVE, so only a deleted revision is truly gone.
        aws.ecs.deregister_task_definition(taskDefinition=leaky["taskDefinitionArn"])
        aws.ecs.delete_task_definitions(taskDefinitions=[leaky["taskDefinitionArn"]])
    assert aws.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]["revision"] == current["revision"]


# --- RDS.
@restores("database", "reachable")
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"PubliclyAccessible": True}, "publicly accessible"),
        ({"BackupRetentionPeriod": 1}, "backup retention 1 days (< 7)"),
    ],
    ids=["publicly-accessible", "one-day-backups"],
)
def test_a_weakened_database_is_named(aws, change, problem):
    [db] = aws.rds.describe_db_instances(DBInstanceIdentifier=DATABASE)["DBInstances"]
    original = {key: db[key] for key in change}
    aws.rds.modify_db_instance(DBInstanceIdentifier=DATABASE, ApplyImmediately=True, **change)
    try:
        assert audit.database_weaknesses(aws.rds, STACK) == [f"db instance {DATABASE}: {problem}"]
        if "PubliclyAccessible" in change:
            found = audit.internet_reachable_internals(aws.ec2, aws.ecs, aws.rds, STACK)
            assert found == [f"db instance {DATABASE}: publicly accessible"]
    finally:
        aws.rds.modify_db_instance(DBInstanceIdentifier=DATABASE, ApplyImmediately=True, **original)


@restores("database", "reachable")
def test_an_unencrypted_database_is_named(aws):
    """Encryption cannot be switched off on an existing instance (on AWS or the emulator), so this is what a
    `storage_encrypted: false` would have created: a second instance of the stack, unencrypted."""
    [db] = aws.rds.describe_db_instances(DBInstanceIdentifier=DATABASE)["DBInstances"]
    identifier = f"{STACK}-unencrypted"
    aws.rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        DBInstanceClass=db["DBInstanceClass"],
        AllocatedStorage=20,
        MasterUsername="audit",
        MasterUserPassword="not-a-real-password",
        StorageEncrypted=False,
        PubliclyAccessible=False,
        BackupRetentionPeriod=7,
        DBSubnetGroupName=db["DBSubnetGroup"]["DBSubnetGroupName"],
        VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]],
        Tags=[{"Key": audit.STACK_TAG, "Value": STACK}],
    )
    try:
        assert audit.database_weaknesses(aws.rds, STACK) == [f"db instance {identifier}: storage not encrypted"]
    finally:
        aws.rds.delete_db_instance(DBInstanceIdentifier=identifier, SkipFinalSnapshot=True)


# --- S3.
def _bucket(aws: Clients, purpose: str) -> str:
    [name] = [name for name, tags in audit._stack_buckets(aws.s3, STACK) if tags[audit.BUCKET_PURPOSE_TAG] == purpose]
    return name


@restores("buckets")
@pytest.mark.parametrize("purpose", ["dags", "data"])
def test_a_bucket_without_its_public_access_block_is_named(aws, purpose):
    bucket = _bucket(aws, purpose)
    original = aws.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    aws.s3.delete_public_access_block(Bucket=bucket)
    try:
        assert audit.bucket_weaknesses(aws.s3, STACK) == [f"s3 bucket {bucket}: no public access block"]
        aws.s3.put_public_access_block(
            Bucket=bucket, PublicAccessBlockConfiguration={**original, "RestrictPublicBuckets": False}
        )
        assert audit.bucket_weaknesses(aws.s3, STACK) == [
            f"s3 bucket {bucket}: public access not blocked (RestrictPublicBuckets off)"
        ]
    finally:
        aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=original)


@restores("buckets")
def test_an_unencrypted_bucket_is_named(aws):
    bucket = _bucket(aws, "data")
    original = aws.s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    aws.s3.delete_bucket_encryption(Bucket=bucket)
    try:
        assert audit.bucket_weaknesses(aws.s3, STACK) == [f"s3 bucket {bucket}: no default encryption"]
    finally:
        aws.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=original)


@restores("buckets")
def test_a_dag_bucket_with_versioning_suspended_is_named(aws):
    bucket = _bucket(aws, "dags")
    aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    try:
        assert audit.bucket_weaknesses(aws.s3, STACK) == [f"s3 bucket {bucket}: DAG bucket versioning Suspended"]
    finally:
        aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


# --- IAM.
BROAD_STATEMENTS = {
    "s3-star-on-star": (
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        ["grants every s3 action ('s3:*')", "grants s3:* on *"],
    ),
    "secrets-on-star": (
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"},
        ["grants secretsmanager:GetSecretValue on *"],
    ),
    "logs-star-scoped": (
        {
            "Effect": "Allow",
            "Action": "logs:*",
            "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/airflow/tasks:*",
        },
        ["grants every logs action ('logs:*')"],
    ),
    "every-bucket": (
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::*"]},
        ["grants s3:GetObject on arn:aws:s3:::*"],
    ),
    "every-action": (
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::airflow-dags-123456789012-us-east-1/*"},
        ["grants every action ('*')"],
    ),
}


@restores("iam")
@pytest.mark.parametrize("case", sorted(BROAD_STATEMENTS))
def test_a_broad_inline_policy_on_a_stack_role_is_named(aws, case):
    statement, problems = BROAD_STATEMENTS[case]
    role = f"{STACK}-worker-execution"
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Sid": "Audit", **statement}]})
    aws.iam.put_role_policy(RoleName=role, PolicyName="audit-broad", PolicyDocument=document)
    try:
        found = audit.broad_iam_grants(aws.iam, aws.ecs, STACK)
        assert found == [f"iam role {role} inline policy audit-broad: statement Audit {p}" for p in problems]
    finally:
        aws.iam.delete_role_policy(RoleName=role, PolicyName="audit-broad")


@restores("iam")
def test_a_broad_customer_managed_policy_attached_to_a_stack_role_is_named(aws):
    role = f"{STACK}-worker-task"
    document = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    )
    policy = aws.iam.create_policy(PolicyName="audit-s3-everything", PolicyDocument=document)["Policy"]
    aws.iam.attach_role_policy(RoleName=role, PolicyArn=policy["Arn"])
    try:
        assert audit.broad_iam_grants(aws.iam, aws.ecs, STACK) == [
            f"iam role {role} managed policy audit-s3-everything: statement 0 grants every s3 action ('s3:*')",
            f"iam role {role} managed policy audit-s3-everything: statement 0 grants s3:* on *",
        ]
    finally:
        aws.iam.detach_role_policy(RoleName=role, PolicyArn=policy["Arn"])
        aws.iam.delete_policy(PolicyArn=policy["Arn"])


def test_a_secret_printed_by_a_task_is_named(deployed, aws):
    """A task that shows a looked-up secret (a `debug`, or any task without `no_log`) leaks it into the output."""
    result, output = run_module_with_output(
        "ansible.builtin.debug",
        {"msg": f"{{{{ lookup('amazon.aws.secretsmanager_secret', '{STACK}/database') }}}}"},
        deployed.emulator.env(),
    )
    assert not result.get("failed"), output[-3000:]
    assert audit.secret_values_in_output(aws.secretsmanager, STACK, output) == [f"secret {STACK}/database"]


# --- One task role per component; secrets read only where used; trust; Spot; TLS.
def _register_revision(aws: Clients, family: str, **changes) -> dict:
    """A new revision of `family` (one without a service: its latest revision is what runs), with `changes`."""
    current = aws.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    keys = ["family", "containerDefinitions", "cpu", "memory", "networkMode", "requiresCompatibilities"]
    keys += ["executionRoleArn", "taskRoleArn", "runtimePlatform"]
    registration = {key: copy.deepcopy(current[key]) for key in keys if key in current}
    return aws.ecs.register_task_definition(**{**registration, **changes})["taskDefinition"]


def _drop_revision(aws: Clients, revision: dict) -> None:
    # Deregister and delete: the emulator answers a family with its latest revision even when INACTIVE.
    aws.ecs.deregister_task_definition(taskDefinition=revision["taskDefinitionArn"])
    aws.ecs.delete_task_definitions(taskDefinitions=[revision["taskDefinitionArn"]])


@restores("task roles", "trust")
def test_a_task_role_shared_by_two_components_is_named(aws):
    """The migrate task run with the workers' role: shared, and a component other than the workers may write data."""
    worker = aws.ecs.describe_task_definition(taskDefinition=f"{STACK}-worker")["taskDefinition"]
    role = worker["taskRoleArn"].rsplit("/", 1)[-1]
    shared = _register_revision(aws, f"{STACK}-migrate", taskRoleArn=worker["taskRoleArn"])
    try:
        holders = f"{STACK}-migrate, {STACK}-worker"
        assert audit.shared_or_broad_task_roles(aws.iam, aws.ecs, aws.s3, STACK) == [
            f"iam role {role} is the task role of {holders}",
            f"iam role {role} (task role of {holders}) may s3:PutObject, s3:DeleteObject in data bucket "
            f"{_bucket(aws, 'data')}",
        ]
    finally:
        _drop_revision(aws, shared)


@restores("task roles", "iam")
def test_a_component_other_than_the_workers_that_may_write_pipeline_data_is_named(aws):
    role, data = f"{STACK}-api-server-task", _bucket(aws, "data")
    statement = {"Effect": "Allow", "Action": "s3:Delete*", "Resource": f"arn:aws:s3:::{data}/*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    aws.iam.put_role_policy(RoleName=role, PolicyName="audit-data", PolicyDocument=document)
    try:
        assert audit.shared_or_broad_task_roles(aws.iam, aws.ecs, aws.s3, STACK) == [
            f"iam role {role} (task role of {STACK}-api-server) may s3:DeleteObject in data bucket {data}"
        ]
    finally:
        aws.iam.delete_role_policy(RoleName=role, PolicyName="audit-data")


@restores("secrets", "iam")
def test_an_execution_role_that_may_read_secrets_its_task_definition_does_not_name_is_named(aws):
    """The shared execution role of earlier releases, in effect: every secret of the stack for the workers."""
    family = f"{STACK}-worker"
    role = f"{family}-execution"
    definition = aws.ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    used = {audit._secret_arn(s["valueFrom"]) for c in definition["containerDefinitions"] for s in c.get("secrets", [])}
    stack_secrets = [s for s in aws.secretsmanager.list_secrets()["SecretList"] if s["Name"].startswith(f"{STACK}/")]
    unused = sorted(s["Name"] for s in stack_secrets if s["ARN"] not in used)
    assert unused and used, "the audit would have nothing to tell apart"
    statement = {
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{STACK}/*",
    }
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    aws.iam.put_role_policy(RoleName=role, PolicyName="audit-every-secret", PolicyDocument=document)
    try:
        found = audit.secrets_beyond_use(aws.iam, aws.ecs, aws.secretsmanager, STACK)
        owner = f"iam role {role} (execution role of {family})"
        assert sorted(found) == [f"{owner} may read secret {name}, which it does not use" for name in unused]
    finally:
        aws.iam.delete_role_policy(RoleName=role, PolicyName="audit-every-secret")


@restores("secrets")
def test_an_execution_role_shared_by_two_task_definitions_is_named(aws):
    worker = aws.ecs.describe_task_definition(taskDefinition=f"{STACK}-worker")["taskDefinition"]
    shared = _register_revision(aws, f"{STACK}-task", executionRoleArn=worker["executionRoleArn"])
    try:
        assert audit.secrets_beyond_use(aws.iam, aws.ecs, aws.secretsmanager, STACK) == [
            f"iam role {STACK}-worker-execution is the execution role of {STACK}-task, {STACK}-worker"
        ]
    finally:
        _drop_revision(aws, shared)


PLAIN_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@restores("trust")
@pytest.mark.parametrize(
    ("role", "condition", "missing"),
    [
        ("worker-task", None, "aws:SourceAccount 123456789012 and aws:SourceArn of 123456789012's ECS"),
        ("task", {"StringEquals": {"aws:SourceAccount": "123456789012"}}, "aws:SourceArn of 123456789012's ECS"),
        (
            "scheduler-task",
            {"StringEquals": {"aws:SourceAccount": "210987654321"}, "ArnLike": {"aws:SourceArn": "arn:aws:ecs:*:*:*"}},
            "aws:SourceAccount 123456789012 and aws:SourceArn of 123456789012's ECS",
        ),
    ],
    ids=["no-condition", "account-only", "other-account"],
)
def test_a_task_role_trusting_ecs_tasks_of_any_account_is_named(aws, role, condition, missing):
    role = f"{STACK}-{role}"
    original = aws.iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    trust = copy.deepcopy(PLAIN_TRUST)
    if condition:
        trust["Statement"][0]["Condition"] = condition
    aws.iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(trust))
    try:
        assert audit.task_role_trust_without_source(aws.iam, aws.ecs, STACK) == [
            f"iam role {role} trusts ecs-tasks.amazonaws.com without {missing}"
        ]
    finally:
        aws.iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(audit._document(original)))


@restores("capacity")
def test_workers_on_fargate_spot_alone_are_named_and_an_on_demand_base_is_not(aws):
    """The emulator runs services with the FARGATE launch type; AWS gets the strategy of ecs_service."""
    service = f"{STACK}-worker"
    spot = [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    based = [{"capacityProvider": "FARGATE", "weight": 1, "base": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 4}]
    try:
        aws.ecs.update_service(cluster=STACK, service=service, capacityProviderStrategy=spot)
        assert audit.spot_only_services(aws.ecs, STACK) == [
            f"ecs service {service}: on FARGATE_SPOT without an on-demand FARGATE base"
        ]
        aws.ecs.update_service(cluster=STACK, service=service, capacityProviderStrategy=based)
        assert audit.spot_only_services(aws.ecs, STACK) == []
    finally:
        aws.ecs.update_service(cluster=STACK, service=service, capacityProviderStrategy=[])


@restores("buckets")
@pytest.mark.parametrize("purpose", ["dags", "data"])
def test_a_bucket_that_admits_plain_http_is_named(aws, purpose):
    bucket = _bucket(aws, purpose)
    original = aws.s3.get_bucket_policy(Bucket=bucket)["Policy"]
    [statement] = [s for s in json.loads(original)["Statement"] if s.get("Sid") == "DenyInsecureTransport"]
    problem = f"s3 bucket {bucket}: {audit.NO_TLS_POLICY}"
    try:
        aws.s3.delete_bucket_policy(Bucket=bucket)
        assert audit.bucket_weaknesses(aws.s3, STACK) == [problem]
        # Denied over plain HTTP for the objects only: the bucket's own operations still answer over HTTP.
        objects_only = {**statement, "Resource": f"arn:aws:s3:::{bucket}/*"}
        weakened = {"Version": "2012-10-17", "Statement": [objects_only]}
        aws.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(weakened))
        assert audit.bucket_weaknesses(aws.s3, STACK) == [problem]
    finally:
        aws.s3.put_bucket_policy(Bucket=bucket, Policy=original)
