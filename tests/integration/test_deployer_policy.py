"""The shipped deployer policy is enough and no more: the whole life of a stack runs under it with IAM enforced.

On an emulator with enforced IAM (embedded_aws/iam.py) the admin renders the policy
(deployer_policy.yml), makes a deployer user with exactly that policy, and the deployer then deploys,
re-runs, checks, turns on HTTPS and worker autoscaling with a secret rotation, switches to Amazon MQ,
checks again and tears down. Every request the deployer made is in the emulator's IAM log: none may
have been denied, and every action of the policy must have been used or be listed with the reason the
run cannot show it. The resource scoping that the emulator does not judge is checked against AWS's
service authorization data (policy_sentry): every action exists, every ARN fits each of its actions,
every action's dependent actions are granted, and "*" is used only where AWS offers nothing narrower.
The task roles' policies, read back from the deployed stack, get the same scoping check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import yaml
from ansible_runner import ROOT, PlayResult, run_playbook
from certificates import import_self_signed_certificate
from emulator import REGION, Emulator, free_port, start_emulator
from policy_sentry.querying.actions import get_action_data

pytestmark = pytest.mark.xdist_group("deployer_policy")

POLICY_VARS = yaml.safe_load((ROOT / "playbooks" / "vars" / "deployer_policy.yml").read_text())
NOT_EXERCISED: dict[str, str] = POLICY_VARS["deployer_policy_not_exercised"]
# Statements granted on "*" although some of their actions take ARNs: those ARNs hold ids AWS assigns
# (VPC, subnet, gateway, security group, namespace, broker, scalable target), never the stack's name.
BROAD_BY_NECESSITY = {
    "Network",
    "ServiceDiscovery",
    "WorkerAutoscaling",
    "AmazonMqBroker",
    "ServiceLinkedRolesOnFirstUse",
    "StackTaskList",
}
# Dependent actions AWS lists for features the stack does not use.
UNUSED_DEPENDENCIES = {
    "rds:CreateTenantDatabase": "multi-tenant RDS for Oracle",
    "rds:DeleteTenantDatabase": "multi-tenant RDS for Oracle",
    "secretsmanager:RotateSecret": "an RDS-managed master password (the stack rotates its own)",
    "kms:CreateGrant": "an RDS instance encrypted with a customer managed key (the stack uses RDS's own)",
    "secretsmanager:CreateSecret": "an RDS-managed master password (the stack stores its own)",
}
REMOVED_FOR_THE_DENIAL_TEST = "secretsmanager:CreateSecret"
CREDENTIALS_TOKEN = "task-credentials-token"
PROBE = ROOT / "tests" / "task_role_probe.py"


def run_task_role_probes(emulator: Emulator, credentials_port: int) -> dict[str, subprocess.CompletedProcess]:
    """Each task role's calls, made as its task would make them: credentials from the container endpoint."""
    s3 = emulator.client("s3")
    buckets = {b["Name"].split("-")[1]: b["Name"] for b in s3.list_buckets()["Buckets"]}
    ecs = emulator.client("ecs")
    migrate = ecs.describe_task_definition(taskDefinition="airflow-migrate")["taskDefinition"]
    secrets = sorted(
        {
            s["valueFrom"].split(":username")[0].split(":password")[0]
            for s in migrate["containerDefinitions"][0]["secrets"]
        }
    )
    probes = {
        "airflow_task_logs": ("airflow-airflow-task", ["/ecs/airflow/tasks"]),
        "airflow_buckets": ("airflow-airflow-task", [buckets["dags"], buckets["data"]]),
        "execution_secrets": ("airflow-ecs-execution", secrets),
        "worker_demand": ("airflow-worker-demand", ["airflow-ecs/airflow"]),
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


@dataclass
class Enforced:
    emulator: Emulator
    log: Path
    policy: dict
    deployer_key: str
    runs: dict[str, PlayResult] = field(default_factory=dict)
    task_role_policies: dict[str, dict] = field(default_factory=dict)
    probes: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    def deployer_env(self, key: tuple[str, str]) -> dict[str, str]:
        return {**self.emulator.env(), "AWS_ACCESS_KEY_ID": key[0], "AWS_SECRET_ACCESS_KEY": key[1]}

    def requests(self) -> list[dict]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [line for line in lines if line["key"] == self.deployer_key]


def make_deployer(emulator: Emulator, policy: dict, name: str) -> tuple[str, str]:
    iam = emulator.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="airflow-ecs-deployer", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def enforced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Enforced]:
    workdir = tmp_path_factory.mktemp("enforced")
    log = workdir / "iam.jsonl"
    credentials_port = free_port()
    emulator = start_emulator(
        workdir / "moto.log",
        env={
            "EMBEDDED_AWS_ENFORCE_IAM": "1",
            "EMBEDDED_AWS_IAM_LOG": str(log),
            "EMBEDDED_AWS_CREDENTIALS_PORT": str(credentials_port),
            "EMBEDDED_AWS_CREDENTIALS_TOKEN": CREDENTIALS_TOKEN,
        },
    )
    policy_file = workdir / "policy.json"
    rendered = run_playbook(
        "deployer_policy.yml", emulator.env(), extra_vars={"deployer_policy_file": str(policy_file)}
    )
    assert rendered.returncode == 0, rendered.output[-3000:]
    policy = json.loads(policy_file.read_text())
    key = make_deployer(emulator, policy, "deployer")
    state = Enforced(emulator, log, policy, key[0])
    env = state.deployer_env(key)
    features = {
        "load_balancer_certificate_arn": import_self_signed_certificate(emulator),
        "network_alb_allowed_cidrs": ["203.0.113.0/24"],
        "airflow_nodes_worker_min_count": 0,
        "airflow_nodes_worker_max_count": 4,
        "monitoring_alarm_emails": ["oncall@example.com"],
    }
    steps = [
        ("deploy", "site.yml", {}, []),
        ("rerun", "site.yml", {}, []),
        ("check", "site.yml", {}, ["--check", "--diff"]),
        ("features", "site.yml", {**features, "secrets_rotate": ["api_secret_key"]}, []),
        # ... and the e-mail subscription removed again (Unsubscribe)
        ("amazonmq", "site.yml", {**features, "broker_backend": "amazonmq", "monitoring_alarm_emails": []}, []),
        (
            "amazonmq_check",
            "site.yml",
            {**features, "broker_backend": "amazonmq", "monitoring_alarm_emails": []},
            ["--check"],
        ),
        ("teardown", "teardown.yml", {}, []),
    ]
    for name, playbook, extra_vars, args in steps:
        if name == "teardown":
            state.probes = run_task_role_probes(emulator, credentials_port)
            iam = emulator.client("iam")
            for role in ("airflow-airflow-task", "airflow-ecs-execution", "airflow-worker-demand"):
                state.task_role_policies[role] = iam.get_role_policy(
                    RoleName=role, PolicyName=iam.list_role_policies(RoleName=role)["PolicyNames"][0]
                )["PolicyDocument"]
        state.runs[name] = run_playbook(playbook, env, extra_vars=extra_vars, args=args)
        assert state.runs[name].returncode == 0, f"{name}:\n{state.runs[name].output[-5000:]}"
    yield state
    emulator.stop()


def test_the_whole_life_of_a_stack_runs_under_the_deployer_policy(enforced):
    assert enforced.runs["rerun"].changed == 0
    assert enforced.runs["check"].changed == 0
    assert enforced.runs["amazonmq_check"].changed == 0
    denied = sorted({(r["action"], r["resource"]) for r in enforced.requests() if not r["allowed"]})
    assert denied == [], f"the deployer was denied: {denied}"


@pytest.mark.parametrize("probe", ["airflow_task_logs", "airflow_buckets", "execution_secrets", "worker_demand"])
def test_each_task_role_can_make_its_calls_with_its_own_credentials(enforced, probe):
    """Regression: Airflow's CloudWatch handler creates its log group when it cannot list it, which the
    task role was not allowed (AccessDenied on logs:CreateLogGroup in every task and dag-processor)."""
    result = enforced.probes[probe]
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def granted_actions(policy: dict) -> set[str]:
    actions = set()
    for statement in policy["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_every_granted_action_is_used_or_says_why_not(enforced):
    used = {r["action"] for r in enforced.requests()}
    granted = granted_actions(enforced.policy)
    needless = sorted(granted - used - set(NOT_EXERCISED))
    assert needless == [], f"granted but never used and not explained: {needless}"
    stale = sorted(set(NOT_EXERCISED) & used)
    assert stale == [], f"listed as not exercised but used by the run: {stale}"
    assert set(NOT_EXERCISED) <= granted, sorted(set(NOT_EXERCISED) - granted)


def test_a_missing_permission_fails_the_deploy_naming_the_action(enforced):
    """Last: resets the emulator. The policy without one action it needs stops the deploy at that action."""
    enforced.emulator.reset()
    policy = json.loads(json.dumps(enforced.policy))
    for statement in policy["Statement"]:
        if isinstance(statement["Action"], list) and REMOVED_FOR_THE_DENIAL_TEST in statement["Action"]:
            statement["Action"].remove(REMOVED_FOR_THE_DENIAL_TEST)
    key = make_deployer(enforced.emulator, policy, "deployer-short")
    result = run_playbook("site.yml", enforced.deployer_env(key))
    assert result.returncode != 0
    assert "AccessDenied" in result.output and REMOVED_FOR_THE_DENIAL_TEST in result.output, result.output[-3000:]


# --- resource scoping, against AWS's service authorization data


def does_arn_match(arn: str, arn_format: str) -> bool:
    """Whether a policy ARN (with * wildcards) names resources of an AWS ARN format.

    Each * stands for some text, slashes and colons included (tried as one, two and three parts);
    each ${Variable} of the format for any non-empty text (policy_sentry's own matcher refuses names
    with '/', such as the log group /ecs/x).
    """
    fixed = {"${Partition}": "aws[a-z-]*", "${Region}": "[a-z0-9-]*", "${Account}": "[0-9]*"}
    pattern = ""
    for part in re.split(r"(\$\{[A-Za-z0-9]+\})", arn_format):
        if part.startswith("${"):
            pattern += fixed.get(part, ".+")
        else:
            pattern += re.escape(part)
    return any(re.fullmatch(pattern, arn.replace("*", text)) for text in ("x", "x/x", "x/x/x", "x:x"))


def action_rows(action: str) -> list[dict]:
    service, name = action.split(":")
    return get_action_data(service, name).get(service) or []


def scoping_problems(policy: dict, broad_sids: set[str]) -> list[str]:
    """What AWS would not grant as written, or grants wider than it must.

    A scoped statement must grant each of its actions on at least one of its ARNs, and each ARN must be
    taken by one of its actions; "*" is for actions that take no ARN, or statements in `broad_sids`.
    """
    problems = []
    for statement in policy["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        formats_of = {}
        for action in actions:
            rows = action_rows(action)
            if not rows:
                problems.append(f"{action}: not an IAM action AWS knows")
                continue
            formats_of[action] = [row["resource_arn_format"] for row in rows if row["resource_arn_format"] != "*"]
        if resources == ["*"]:
            problems += [
                f"{action}: granted on * although it takes {formats[0]}"
                for action, formats in formats_of.items()
                if formats and statement.get("Sid") not in broad_sids
            ]
            continue
        for action, formats in formats_of.items():
            if not any(does_arn_match(arn, known) for arn in resources for known in formats):
                problems.append(f"{action}: none of {resources} is a resource it takes ({formats or ['*']})")
        for arn in resources:
            if not any(does_arn_match(arn, known) for formats in formats_of.values() for known in formats):
                problems.append(f"{statement.get('Sid')}: no action of the statement takes {arn}")
    return problems


def test_the_deployer_policy_names_only_real_actions_on_resources_they_take(enforced):
    assert scoping_problems(enforced.policy, BROAD_BY_NECESSITY) == []


def test_the_deployer_policy_grants_what_its_actions_depend_on(enforced):
    granted = granted_actions(enforced.policy)
    missing = sorted(
        f"{dependency} (for {action})"
        for action in granted
        for row in action_rows(action)
        for dependency in row.get("dependent_actions") or []
        if dependency not in granted and dependency not in UNUSED_DEPENDENCIES
    )
    assert missing == []


@pytest.mark.parametrize("role", ["airflow-airflow-task", "airflow-ecs-execution", "airflow-worker-demand"])
def test_each_task_role_policy_is_scoped(enforced, role):
    # The worker-demand role may put metrics only into the stack's namespace: PutMetricData takes no
    # resource, so its "*" is narrowed by the cloudwatch:namespace condition instead.
    policy = enforced.task_role_policies[role]
    broad = {
        s.get("Sid")
        for s in policy["Statement"]
        if s.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace")
    }
    assert scoping_problems(policy, broad) == []


def test_the_policy_is_rendered_for_the_stack_region_and_account(enforced):
    text = json.dumps(enforced.policy)
    account = boto3.client(
        "sts",
        endpoint_url=enforced.emulator.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).get_caller_identity()["Account"]
    assert f"arn:aws:secretsmanager:{REGION}:{account}:secret:airflow/*" in text
    assert "{{" not in text
