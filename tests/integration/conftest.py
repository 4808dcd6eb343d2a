"""Fixtures for playbook runs: a deployed stack on its own emulator, shared by the tests that read it.

The stack's whole life (deploy, re-run, check, resize, features, upgrade, broker switch, teardown) runs
as a deployer IAM user holding exactly the shipped deployer policy, on an emulator that enforces IAM and
logs every request; test_deployer_policy.py reads that log.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ansible_runner import ROOT, PlayResult, run_playbook, upgraded_recipe
from certificates import import_self_signed_certificate
from emulator import REGION, Emulator, free_port, start_emulator
from stack_inventory import leftover_resources

from embedded_aws.launcher import deployer_keys

CREDENTIALS_TOKEN = "task-credentials-token"
IAM_LOG = "iam.jsonl"  # in the stack's work directory: the emulator writes it, Deployer.requests reads it
PROBE = ROOT / "tests" / "task_role_probe.py"
REMOVED_FOR_THE_DENIAL_TEST = "secretsmanager:CreateSecret"
TASK_ROLES = ("airflow-api-server-task", "airflow-scheduler-task", "airflow-worker-task", "airflow-scheduler-execution")


@dataclass
class Deployer:
    """The IAM user every playbook run of the shared stack runs as, and the emulator's log of IAM decisions."""

    policy: dict  # the deployer policy as deployer_policy.yml rendered it
    env: dict[str, str]  # endpoint settings and the deployer's access key
    log: Path  # one JSON line per request: key, action, resource, allowed
    credentials_port: int  # the emulator's ECS container credentials endpoint

    def requests(self) -> list[dict]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [line for line in lines if line["key"] == self.env["AWS_ACCESS_KEY_ID"]]


@dataclass
class Deployment:
    emulator: Emulator
    deployer: Deployer
    first: PlayResult  # deploy from zero, verbose (-v): the output no secret may appear in
    second: PlayResult  # the same again: must change nothing
    checked: PlayResult  # --check --diff on the deployed stack: must report nothing to change
    resized: PlayResult  # one variable changed: the worker's size
    resized_services: tuple[dict, dict]  # service_environments before and after `resized`


@dataclass
class Featured:
    """The same stack after `deployed`, with the production features switched on, then upgraded."""

    emulator: Emulator
    variables: dict  # what the features run passed
    certificate_arn: str
    targets_before: list  # the scalable targets before the features run (none: autoscaling was off)
    features: PlayResult  # HTTPS, allowed CIDRs, worker autoscaling on the deployed stack
    upgraded: PlayResult  # the same variables with only the image recipe changed (images_recipe_dir)
    # (secret version, service_environments) of ROTATED, which the features run also rotates
    rotated_before: tuple
    rotated_after: tuple
    upgraded_services: dict  # service_environments right after `upgraded`
    upgraded_migrate_image: str  # image of the latest airflow-migrate task definition after `upgraded`
    upgraded_image: str  # the image the upgraded recipe built: <repository>@<digest of its tag> in ECR
    upgraded_recipe_dir: str  # the recipe `upgraded` ran with (the runs after it keep it)


@dataclass
class Switched:
    """The featured stack moved to Amazon MQ, checked, then torn down (the last runs on the shared emulator)."""

    emulator: Emulator
    before: dict  # broker-related state before the switch (see conftest.broker_state)
    after: dict  # the same right after the switch
    switched: PlayResult  # broker_backend amazonmq on the featured stack
    checked: PlayResult  # --check --diff of the same: must report nothing to change
    torn_down: PlayResult  # teardown.yml (default variables) with the Amazon MQ broker in place
    leftovers: list  # stack_inventory.leftover_resources after the teardown
    # Read just before the teardown: each task role's calls made with its own credentials, and its policy
    probes: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)
    task_role_policies: dict[str, dict] = field(default_factory=dict)


AMAZONMQ = {"broker_backend": "amazonmq"}
ROTATED = "api_secret_key"  # secrets_rotate key of a secret every Airflow node reads and the broker does not
RESIZED_WORKER = {"airflow_nodes_worker_cpu": 2048, "airflow_nodes_worker_memory": 4096}
# An image upgrade is a new recipe (images_source ecr): the same one with a changed Dockerfile builds a new tag.
UPGRADE_NOTE = "# upgraded by tests/integration/conftest.py\n"


def image_of_tag(emulator: Emulator, repository: str, tag_prefix: str, exclude: str) -> str:
    """<registry>/<repository>@<digest> of the image whose tag starts with tag_prefix and is not `exclude`'s."""
    ecr = emulator.client("ecr")
    repo = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
    for image in ecr.describe_images(repositoryName=repository)["imageDetails"]:
        reference = f"{repo['repositoryUri']}@{image['imageDigest']}"
        if reference != exclude and any(t.startswith(tag_prefix) for t in image.get("imageTags", [])):
            return reference
    return ""


ALLOWED_CIDRS = ["203.0.113.0/24", "198.51.100.7/32"]
UI_DOMAIN = "airflow.example.com"  # the features run's domain name, in the public zone example.com
ALARM_EMAIL = "oncall@example.com"  # subscribed by the features run, unsubscribed by the broker switch


@pytest.fixture(scope="session")
def stack_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def stack_credentials_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def stack_emulator(stack_workdir: Path, stack_credentials_port: int) -> Iterator[Emulator]:
    """IAM enforced and logged, and the ECS container credentials endpoint on (the task role probes use it)."""
    server = start_emulator(
        stack_workdir / "moto.log",
        env={
            "EMBEDDED_AWS_ENFORCE_IAM": "1",
            "EMBEDDED_AWS_IAM_LOG": str(stack_workdir / IAM_LOG),
            "EMBEDDED_AWS_CREDENTIALS_PORT": str(stack_credentials_port),
            "EMBEDDED_AWS_CREDENTIALS_TOKEN": CREDENTIALS_TOKEN,
        },
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def deployer(stack_emulator: Emulator, stack_workdir: Path, stack_credentials_port: int) -> Deployer:
    """As `make deploy` does: the admin renders the deployer policy and makes the deployer user with it."""
    policy_file = stack_workdir / "deployer-policy.json"
    rendered = run_playbook(
        "deployer_policy.yml", stack_emulator.env(), extra_vars={"deployer_policy_file": str(policy_file)}
    )
    assert rendered.returncode == 0, rendered.output[-3000:]
    keys = deployer_keys(stack_emulator, policy_file, stack_workdir / "deployer-key.json")
    env = {**stack_emulator.env(), **keys}
    return Deployer(json.loads(policy_file.read_text()), env, stack_workdir / IAM_LOG, stack_credentials_port)


@pytest.fixture(scope="session")
def deployed(stack_emulator: Emulator, deployer: Deployer) -> Deployment:
    """site.yml from zero, again, in check mode, then with a bigger worker; the tests only read the results."""
    env = deployer.env
    first = run_playbook("site.yml", env, args=["-v"])
    assert first.returncode == 0, first.output[-5000:]
    second = run_playbook("site.yml", env)
    checked = run_playbook("site.yml", env, args=["--check", "--diff"])
    before = service_environments(stack_emulator)
    resized = run_playbook("site.yml", env, extra_vars=RESIZED_WORKER)
    return Deployment(
        stack_emulator, deployer, first, second, checked, resized, (before, service_environments(stack_emulator))
    )


@pytest.fixture(scope="session")
def featured(deployed: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Featured:
    """Two more runs on the deployed stack, requested only by tests that run after every reader of the default stack.

    `features` turns on HTTPS with a domain name (a Route 53 alias in example.com), restricted CIDRs, an
    alarm e-mail and Flower, moves the dag-processor and the triggerer out of the scheduler's task into
    services of their own, narrows worker autoscaling from
    0-4 to 1-3 and rotates one secret (ROTATED); `upgraded` then changes only
    the Airflow image, so it also proves the features re-run without changes.
    """
    emulator, env = deployed.emulator, deployed.deployer.env
    certificate_arn = import_self_signed_certificate(emulator, UI_DOMAIN)
    emulator.client("route53").create_hosted_zone(Name=UI_DOMAIN.split(".", 1)[1], CallerReference="featured")
    variables = {
        **RESIZED_WORKER,
        "load_balancer_certificate_arn": certificate_arn,
        "load_balancer_domain_name": UI_DOMAIN,  # its zone (example.com) found by name
        "network_alb_allowed_cidrs": ALLOWED_CIDRS,
        "airflow_nodes_worker_min_count": 1,
        "airflow_nodes_worker_max_count": 3,
        "airflow_nodes_colocate": False,
        "airflow_nodes_flower_enabled": True,
        "monitoring_alarm_emails": [ALARM_EMAIL],
    }
    scaling = emulator.client("application-autoscaling")
    targets_before = scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    rotated_before = (secret_version(emulator, "airflow/" + ROTATED.replace("_", "-")), service_environments(emulator))
    features = run_playbook("site.yml", env, extra_vars={**variables, "secrets_rotate": [ROTATED]})
    assert features.returncode == 0, features.output[-5000:]
    rotated_after = (secret_version(emulator, "airflow/" + ROTATED.replace("_", "-")), service_environments(emulator))
    before_upgrade = emulator.client("ecs").describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    recipe = upgraded_recipe(tmp_path_factory.mktemp("recipe"), UPGRADE_NOTE)
    upgraded = run_playbook("site.yml", env, extra_vars={**variables, "images_recipe_dir": str(recipe)})
    migrate = emulator.client("ecs").describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    old_image = before_upgrade["containerDefinitions"][0]["image"]
    return Featured(
        emulator,
        variables,
        certificate_arn,
        targets_before,
        features,
        upgraded,
        rotated_before,
        rotated_after,
        service_environments(emulator),
        migrate["containerDefinitions"][0]["image"],
        image_of_tag(emulator, "airflow/airflow", "3.3.2-", exclude=old_image),
        str(recipe),
    )


def runs_component(container: dict, command: list[str]) -> bool:
    """The container runs `command`: as it is, or (the dag-processor, with the ECS executor) at the end of a
    `bash -c` script that first writes the cluster policy."""
    given = container["command"]
    return given == command or (given[:2] == ["bash", "-c"] and given[2].endswith("exec airflow " + " ".join(command)))


def changed_tasks(output: str) -> list[tuple[str, str]]:
    """(task name, changed line) for every `changed:` line of a play's output."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = re.sub(r"\s*\*+$", "", line)[len("TASK [") : -1]
        elif line.startswith("changed:"):
            found.append((task, line))
    return found


def service_environments(emulator: Emulator) -> dict[str, tuple[str, dict]]:
    """Each active ECS service of the stack: (task definition, environment of its container)."""
    ecs = emulator.client("ecs")
    arns = ecs.list_services(cluster="airflow")["serviceArns"]
    described = ecs.describe_services(cluster="airflow", services=arns)["services"] if arns else []
    found = {}
    for service in (s for s in described if s["status"] == "ACTIVE"):
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        env = definition["containerDefinitions"][0].get("environment", [])
        found[service["serviceName"]] = (service["taskDefinition"], {e["name"]: e["value"] for e in env})
    return found


def secret_version(emulator: Emulator, name: str) -> str:
    return emulator.client("secretsmanager").get_secret_value(SecretId=name)["VersionId"]


def broker_state(emulator: Emulator) -> dict:
    """What a broker switch touches, read before the teardown removes it.

    The active ECS services' task definitions and their AIRFLOW_ECS_BROKER, the Cloud Map services, every
    Amazon MQ broker (described) with its subnets' tags, the broker group's ingress and the broker URL.
    """
    services = service_environments(emulator)
    mq, ec2 = emulator.client("mq"), emulator.client("ec2")
    brokers = [mq.describe_broker(BrokerId=b["BrokerId"]) for b in mq.list_brokers()["BrokerSummaries"]]
    for broker in brokers:
        broker.pop("ResponseMetadata", None)
        subnets = ec2.describe_subnets(SubnetIds=broker["SubnetIds"])["Subnets"]
        broker["subnet_tiers"] = [{t["Key"]: t["Value"] for t in s["Tags"]}.get("airflow-ecs:tier") for s in subnets]
        groups = ec2.describe_security_groups(GroupIds=broker["SecurityGroups"])["SecurityGroups"]
        broker["group_names"] = [g["GroupName"] for g in groups]
        current = (broker.get("Configurations") or {}).get("Current") or {}
        if current.get("Id"):  # the settings of the revision the broker runs
            revision = mq.describe_configuration_revision(
                ConfigurationId=current["Id"], ConfigurationRevision=str(current["Revision"])
            )
            broker["configuration_data"] = base64.b64decode(revision["Data"]).decode()
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": ["airflow-broker", "airflow-airflow"]}]
        )["SecurityGroups"]
    }
    secrets = emulator.client("secretsmanager")
    return {
        "task_definitions": {name: definition for name, (definition, _) in services.items()},
        "broker_env": {name: env.get("AIRFLOW_ECS_BROKER") for name, (_, env) in services.items()},
        "discovery": sorted(s["Name"] for s in emulator.client("servicediscovery").list_services()["Services"]),
        "brokers": brokers,
        "broker_ingress": sorted(
            (p["FromPort"], p["ToPort"], tuple(g["GroupId"] for g in p["UserIdGroupPairs"]), len(p["IpRanges"]))
            for p in groups["airflow-broker"]["IpPermissions"]
        ),
        "airflow_group_id": groups["airflow-airflow"]["GroupId"],
        "broker_url": secrets.get_secret_value(SecretId="airflow/broker-url")["SecretString"],
        "broker_credentials": json.loads(secrets.get_secret_value(SecretId="airflow/broker")["SecretString"]),
    }


@pytest.fixture(scope="session")
def switched(featured: Featured, deployed: Deployment) -> Switched:
    """Requested only by the last tests of the group: they end the shared deployment."""
    emulator, deployer = featured.emulator, deployed.deployer
    variables = {
        **featured.variables,
        "images_recipe_dir": featured.upgraded_recipe_dir,
        "monitoring_alarm_emails": [],
        **AMAZONMQ,
    }
    before = broker_state(emulator)
    switch = run_playbook("site.yml", deployer.env, extra_vars=variables)
    assert switch.returncode == 0, switch.output[-5000:]
    after = broker_state(emulator)
    checked = run_playbook("site.yml", deployer.env, extra_vars=variables, args=["--check", "--diff"])
    probes = run_task_role_probes(emulator, deployer.credentials_port)
    iam = emulator.client("iam")
    policies = {
        role: iam.get_role_policy(RoleName=role, PolicyName=iam.list_role_policies(RoleName=role)["PolicyNames"][0])[
            "PolicyDocument"
        ]
        for role in TASK_ROLES
    }
    torn_down = run_playbook("teardown.yml", deployer.env)  # broker_backend left at its default on purpose
    leftovers = leftover_resources(emulator)
    return Switched(emulator, before, after, switch, checked, torn_down, leftovers, probes, policies)


@pytest.fixture(scope="session")
def denied(switched: Switched, deployed: Deployment, stack_workdir: Path) -> PlayResult:
    """Last of all (it resets the shared emulator): a deploy by a user whose policy lacks one action it needs."""
    emulator = switched.emulator
    emulator.reset()
    policy = json.loads(json.dumps(deployed.deployer.policy))
    for statement in policy["Statement"]:
        if isinstance(statement["Action"], list) and REMOVED_FOR_THE_DENIAL_TEST in statement["Action"]:
            statement["Action"].remove(REMOVED_FOR_THE_DENIAL_TEST)
    policy_file = stack_workdir / "deployer-short-policy.json"
    policy_file.write_text(json.dumps(policy))
    keys = deployer_keys(emulator, policy_file, stack_workdir / "deployer-short-key.json", user="deployer-short")
    return run_playbook("site.yml", {**emulator.env(), **keys})


def run_task_role_probes(emulator: Emulator, credentials_port: int) -> dict[str, subprocess.CompletedProcess]:
    """Each task role's calls, made as its task would make them: credentials from the container endpoint."""
    s3 = emulator.client("s3")
    buckets = {b["Name"].split("-")[1]: b["Name"] for b in s3.list_buckets()["Buckets"]}
    migrate = emulator.client("ecs").describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    secrets = sorted(
        {
            s["valueFrom"].split(":username")[0].split(":password")[0]
            for s in migrate["containerDefinitions"][0]["secrets"]
        }
    )
    probes = {
        "airflow_task_logs": ("airflow-worker-task", ["/ecs/airflow/tasks"]),
        "airflow_buckets": ("airflow-worker-task", [buckets["dags"], buckets["data"]]),
        "execution_secrets": ("airflow-migrate-execution", secrets),
        "worker_demand": ("airflow-scheduler-task", ["airflow-ecs/airflow"]),  # the scheduler task's publisher
    }
    results = {}
    for probe, (role, args) in probes.items():
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=emulator.url,
            AWS_DEFAULT_REGION=REGION,
            AWS_CONTAINER_CREDENTIALS_FULL_URI=f"http://127.0.0.1:{credentials_port}/v2/credentials/{role}",
            AWS_CONTAINER_AUTHORIZATION_TOKEN=CREDENTIALS_TOKEN,
        )
        results[probe] = subprocess.run(
            [sys.executable, str(PROBE), probe, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    return results
