"""The deployed stack, read back through the AWS API: one deployment shared by every test here.

Every file that reads this deployment is in the `deployed_stack` xdist group, so the playbook runs
behind the session-scoped `deployed` fixture happen once, on one worker.
"""

from __future__ import annotations

import json
import re

import pytest
from ansible_runner import run_playbook
from conftest import RESIZED_WORKER, changed_tasks, runs_component
from cryptography.fernet import Fernet

pytestmark = pytest.mark.xdist_group("deployed_stack")


# --- A second site.yml changes nothing.
def test_deploy_from_zero_succeeds(deployed):
    assert deployed.first.returncode == 0
    assert deployed.first.changed > 0


def test_rerun_reports_no_changes(deployed):
    assert deployed.second.returncode == 0, deployed.second.output[-5000:]
    changed = [line for line in deployed.second.output.splitlines() if line.startswith("changed:")]
    assert deployed.second.changed == 0, changed


def test_check_mode_on_the_deployed_stack_reports_nothing_to_change(deployed):
    assert deployed.checked.returncode == 0, deployed.checked.output[-5000:]
    changed = [line for line in deployed.checked.output.splitlines() if line.startswith("changed:")]
    assert deployed.checked.changed == 0, changed


# --- `site.yml --tags <role>` applies that role alone: the roles it reads run in check mode.
def test_a_tagged_run_applies_its_role_alone(deployed):
    env, cloudwatch = deployed.emulator.env(), deployed.emulator.client("cloudwatch")

    def cpu_threshold() -> float:
        return cloudwatch.describe_alarms(AlarmNames=["airflow-database-cpu"])["MetricAlarms"][0]["Threshold"]

    # The deepest role: it reads the outputs of every role before it but dags.
    nodes = run_playbook("site.yml", env, extra_vars=RESIZED_WORKER, args=["--tags", "airflow_nodes"])
    assert nodes.returncode == 0 and nodes.changed == 0, (changed_tasks(nodes.output), nodes.output[-3000:])
    # After the preflight (which checks every role's inputs): which roles' tasks ran.
    deploy_phase = nodes.output[nodes.output.index("TASK [network : Validating arguments against arg spec 'main'") :]
    ran = {match[1] for match in re.finditer(r"^TASK \[(\w+) : .*\n(ok|changed):", deploy_phase, re.M)}
    assert {"network", "airflow", "load_balancer", "airflow_nodes"} <= ran and not ran & {"dags", "monitoring"}, ran

    before = cpu_threshold()
    higher = {**RESIZED_WORKER, "monitoring_database_cpu_percent": 85}
    changed = run_playbook("site.yml", env, extra_vars=higher, args=["--tags", "monitoring"])
    assert changed.returncode == 0, changed.output[-3000:]
    changes = changed_tasks(changed.output)
    assert changes and all(task.startswith("monitoring : ") for task, _ in changes), changes
    assert (before, cpu_threshold()) == (80, 85)  # the features run (conftest.featured) sets 80 again


# --- The deployed network, read back through the EC2 API.
@pytest.fixture(scope="module")
def ec2(deployed):
    return deployed.emulator.client("ec2")


@pytest.fixture(scope="module")
def vpc(ec2) -> dict:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["airflow-vpc"]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]


def _vpc_filter(vpc: dict) -> list[dict]:
    return [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]


def _tag(resource: dict, key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key)


def test_vpc_has_range_dns_and_stack_tag(ec2, vpc):
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    assert _tag(vpc, "airflow-ecs:stack") == "airflow"
    attr = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
    assert attr["EnableDnsHostnames"]["Value"] is True


def test_one_public_and_one_private_subnet_per_az_in_two_azs(ec2, vpc):
    subnets = ec2.describe_subnets(Filters=_vpc_filter(vpc))["Subnets"]
    tiers = sorted((_tag(s, "airflow-ecs:tier"), s["AvailabilityZone"]) for s in subnets)
    assert tiers == [
        ("private", "us-east-1a"),
        ("private", "us-east-1b"),
        ("public", "us-east-1a"),
        ("public", "us-east-1b"),
    ]
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)


def _default_route_targets(ec2, vpc, tier: str) -> set[str]:
    subnets = ec2.describe_subnets(Filters=[*_vpc_filter(vpc), {"Name": "tag:airflow-ecs:tier", "Values": [tier]}])
    targets = set()
    for subnet in subnets["Subnets"]:
        tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}])[
            "RouteTables"
        ]
        assert len(tables) == 1, f"{tier} subnet {subnet['SubnetId']} has no explicit route table"
        default = [r for r in tables[0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert len(default) == 1
        targets.add(
            default[0].get("GatewayId") or default[0].get("NatGatewayId") or default[0].get("NetworkInterfaceId")
        )
    return targets


def test_public_subnets_route_to_the_internet_gateway(ec2, vpc):
    igw = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])
    assert _default_route_targets(ec2, vpc, "public") == {igw["InternetGateways"][0]["InternetGatewayId"]}


def test_private_subnets_route_to_a_nat_instance_in_a_public_subnet(ec2, vpc):
    """network_egress nat_instance (the default): the private default route goes to the NAT instance's
    interface; the instance forwards (source/destination check off) and keeps an Elastic IP."""
    targets = _default_route_targets(ec2, vpc, "private")
    assert len(targets) == 1 and next(iter(targets)).startswith("eni-")
    [interface] = ec2.describe_network_interfaces(NetworkInterfaceIds=list(targets))["NetworkInterfaces"]
    [instance] = ec2.describe_instances(InstanceIds=[interface["Attachment"]["InstanceId"]])["Reservations"][0][
        "Instances"
    ]
    assert instance["State"]["Name"] == "running" and instance["SourceDestCheck"] is False
    assert instance["InstanceType"] == "t4g.nano" and instance["MetadataOptions"]["HttpTokens"] == "required"
    public = ec2.describe_subnets(SubnetIds=[instance["SubnetId"]])["Subnets"][0]
    assert _tag(public, "airflow-ecs:tier") == "public"
    addresses = ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instance["InstanceId"]]}])
    assert len(addresses["Addresses"]) == 1


@pytest.mark.parametrize(
    ("group", "port", "allowed"),
    [
        ("airflow-airflow", 8080, {"airflow-alb", "airflow-airflow"}),
        ("airflow-airflow", 8793, {"airflow-airflow"}),
        # The triggerer's log server: the api-server reads a deferred task's log from it (open nowhere before).
        ("airflow-airflow", 8794, {"airflow-airflow"}),
        ("airflow-airflow", 5555, {"airflow-airflow"}),
        ("airflow-broker", 5672, {"airflow-airflow"}),
        ("airflow-broker", 15672, {"airflow-airflow"}),
        ("airflow-database", 5432, {"airflow-airflow"}),
    ],
)
def test_tier_ports_admit_only_the_calling_tier(ec2, vpc, group, port, allowed):
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(Filters=_vpc_filter(vpc))["SecurityGroups"]}
    sources = {
        pair["GroupId"]
        for rule in groups[group]["IpPermissions"]
        if rule["FromPort"] <= port <= rule["ToPort"]
        for pair in rule.get("UserIdGroupPairs", [])
    }
    assert sources == {groups[name]["GroupId"] for name in allowed}


# --- Secrets, database, Cloud Map, cluster and broker of the deployed stack, read through the AWS API.
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
    (vpc,) = deployed.emulator.client("ec2").describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["airflow-vpc"]}])[
        "Vpcs"
    ]
    zone_id = namespaces[0]["Properties"]["DnsProperties"]["HostedZoneId"].split("/")[-1]
    zone = deployed.emulator.client("route53").get_hosted_zone(Id=zone_id)
    assert zone["HostedZone"]["Config"]["PrivateZone"] is True
    # Resolvable in the stack's VPC, and only there.
    assert zone["VPCs"] == [{"VPCRegion": "us-east-1", "VPCId": vpc["VpcId"]}], zone["VPCs"]


def test_cluster_has_fargate_and_spot_capacity_and_records_ecs_exec_sessions(deployed):
    cluster = deployed.emulator.client("ecs").describe_clusters(
        clusters=["airflow"], include=["SETTINGS", "TAGS", "CONFIGURATIONS"]
    )
    cluster = cluster["clusters"][0]
    audit = cluster["configuration"]["executeCommandConfiguration"]
    assert audit["logging"] == "OVERRIDE"
    assert audit["logConfiguration"]["s3BucketName"].startswith("airflow-data-")
    assert audit["logConfiguration"]["s3EncryptionEnabled"] is True
    assert cluster["status"] == "ACTIVE"
    assert set(cluster["capacityProviders"]) == {"FARGATE", "FARGATE_SPOT"}
    assert {"key": "airflow-ecs:stack", "value": "airflow"} in cluster["tags"]


def test_each_execution_role_reads_exactly_the_secrets_of_its_task_definition(deployed):
    iam, ecs = deployed.emulator.client("iam"), deployed.emulator.client("ecs")
    for family in ("airflow-worker", "airflow-migrate"):
        definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        assert definition["executionRoleArn"].endswith(f":role/{family}-execution")
        references = [s["valueFrom"] for c in definition["containerDefinitions"] for s in c.get("secrets", [])]
        used = {":".join(reference.split(":")[:7]) for reference in references}
        policy = iam.get_role_policy(RoleName=f"{family}-execution", PolicyName="read-its-secrets")["PolicyDocument"]
        [statement] = policy["Statement"]
        assert statement["Action"] == "secretsmanager:GetSecretValue" and set(statement["Resource"]) == used


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


# --- The Airflow platform of the deployed stack: services, wiring, ALB, migration order, targeted updates.
# The default stack: the scheduler's task also runs the dag-processor and the triggerer (airflow_nodes_colocate),
# Flower is off, the workers are autoscaled by the worker-demand publisher. test_stack_features: the other way.
AIRFLOW_SERVICES = ["api-server", "scheduler", "worker"]
AIRFLOW_NODES = ["api-server", "scheduler", "dag-processor", "triggerer", "worker"]
SHARED_SECRETS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__BROKER_URL",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
}


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
    """The container definition of each service's own container and of every other essential container
    (the scheduler task's dag-processor and triggerer), by name, plus the migrate task's."""
    found = {}
    for name, service in services.items():
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        found[name.removeprefix("airflow-")] = definition["containerDefinitions"][0]
        found.update({c["name"]: c for c in definition["containerDefinitions"][1:] if c["essential"]})
    migrate = ecs.describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    found["migrate"] = migrate["containerDefinitions"][0]
    return found


def test_four_services_run_the_airflow_nodes_and_the_broker(services):
    assert sorted(services) == sorted(f"airflow-{n}" for n in [*AIRFLOW_SERVICES, "rabbitmq"])
    for name, service in services.items():
        # One api-server (a rolling deploy starts its replacement first); the workers start at one.
        assert service["desiredCount"] == 1, name
        assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
        # ECS Exec into every Airflow node (make shell), not into the broker, which has no task role.
        assert service.get("enableExecuteCommand", False) is (name != "airflow-rabbitmq"), name
        breaker = service["deploymentConfiguration"]["deploymentCircuitBreaker"]
        assert breaker == {"enable": True, "rollback": True}, service["serviceName"]


@pytest.mark.parametrize(
    ("node", "command"),
    [
        ("api-server", ["api-server", "--proxy-headers"]),
        ("scheduler", ["scheduler"]),
        ("dag-processor", ["dag-processor"]),
        ("triggerer", ["triggerer"]),
        ("worker", ["celery", "worker"]),
    ],
)
def test_each_node_runs_its_component_with_a_health_check(containers, node, command):
    container = containers[node]
    # The project image (images_source ecr), pinned by digest.
    assert re.fullmatch(
        r"123456789012\.dkr\.ecr\.us-east-1\.amazonaws\.com/airflow/airflow@sha256:[0-9a-f]{64}", container["image"]
    )
    assert runs_component(container, command), container["command"]
    assert container["healthCheck"]["command"][0] == "CMD-SHELL"


def test_every_airflow_container_has_the_same_broker_db_and_key_wiring(containers):
    wiring = {}
    for node in [*AIRFLOW_NODES, "migrate"]:
        secrets = {s["name"]: s["valueFrom"] for s in containers[node]["secrets"]}
        assert set(secrets) >= SHARED_SECRETS, f"{node} lacks {SHARED_SECRETS - set(secrets)}"
        wiring[node] = {k: secrets[k] for k in SHARED_SECRETS}
        env = {e["name"]: e["value"] for e in containers[node]["environment"]}
        # Celery first (the default of every task), the ECS executor beside it (per-task Fargate execution).
        assert env["AIRFLOW__CORE__EXECUTOR"].split(",")[0] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server.airflow.internal:8080/execution/"
        assert "S3DagBundle" in env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"]
    assert len({tuple(sorted(w.items())) for w in wiring.values()}) == 1


def test_worker_shuts_down_warm(containers):
    worker = containers["worker"]
    env = {e["name"]: e["value"] for e in worker["environment"]}
    assert env["DUMB_INIT_SETSID"] == "0"
    assert worker["stopTimeout"] == 120


def test_every_task_runs_on_graviton_and_the_image_is_built_for_it(deployed, ecs, services):
    """ecs_cpu_architecture's default (ARM64) for every task; the project image comes from an ARM build
    environment (CodeBuild builds natively) and its tag names the architecture."""
    for name, service in services.items():
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        assert definition["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}, name
    images = deployed.emulator.client("ecr").describe_images(repositoryName="airflow/airflow")["imageDetails"]
    tags = [tag for image in images for tag in image.get("imageTags", [])]
    assert tags and all(tag.endswith("-arm64") for tag in tags), tags
    [project] = deployed.emulator.client("codebuild").batch_get_projects(names=["airflow-image"])["projects"]
    environment = project["environment"]
    assert (environment["type"], environment["image"]) == (
        "ARM_CONTAINER",
        "aws/codebuild/amazonlinux-aarch64-standard:3.0",
    )


def test_api_server_is_behind_the_alb_and_in_cloud_map(deployed, services):
    api = services["airflow-api-server"]
    assert api["serviceRegistries"]
    # ECS leaves a starting api-server alone as long as its container health check does (start period).
    assert api["healthCheckGracePeriodSeconds"] == 120
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
    migrate = output.index("TASK [airflow : Run the one-off task airflow-ecs-migrate]")
    # The last services task is the Airflow nodes' (the broker's comes first, the migrate entry has none).
    airflow_services = output.rindex("TASK [ecs_service : Create or update the services]")
    assert "changed:" in output[airflow_services:].split("TASK [", 2)[1]
    assert migrate < airflow_services
    assert "airflow-migrate" in output[migrate:airflow_services]
    tasks = deployed.emulator.client("ecs").list_tasks(cluster="airflow", startedBy="airflow-ecs-migrate")
    assert tasks["taskArns"], "no migrate task was started"
    s3 = deployed.emulator.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="airflow-dags-123456789012-us-east-1")["Contents"]]
    assert ".airflow-ecs/migrations/airflow-migrate-1" in keys


def test_rerun_does_not_migrate_again(deployed):
    include = "TASK [airflow : Run `airflow db migrate` as a one-off Fargate task"
    assert include in deployed.second.output
    section = deployed.second.output.split(include, 1)[1].split("TASK [", 1)[0]
    assert "skipping" in section
    assert "TASK [airflow : Run the one-off task airflow-ecs-migrate]" not in deployed.second.output


def test_dags_are_in_the_versioned_dag_bucket(deployed):
    s3 = deployed.emulator.client("s3")
    bucket = "airflow-dags-123456789012-us-east-1"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="dags/")["Contents"]}
    assert {"dags/books_etl.py", "dags/etl/scrape.py", "dags/.airflowignore"} <= keys
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_changing_worker_size_changes_only_the_worker(deployed, containers):
    resized = deployed.resized
    assert resized.returncode == 0, resized.output[-4000:]
    assert {task for task, _ in changed_tasks(resized.output)} == {
        "ecs_service : Register the task definitions (a new revision only when the content changes)",
        "ecs_service : Create or update the services",
    }, changed_tasks(resized.output)
    before, after = deployed.resized_services
    assert {name for name in after if after[name][0] != before[name][0]} == {"airflow-worker"}
    # The task is 2 vCPU / 4 GiB; its metrics sidecar takes 128 MiB of it.
    assert containers["worker"]["cpu"] == 2048 and containers["worker"]["memory"] == 4096 - 128
    assert containers["scheduler"]["cpu"] == 512
