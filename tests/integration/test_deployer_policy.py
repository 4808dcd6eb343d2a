"""The shipped deployer policy is enough and no more: the whole life of a stack runs under it with IAM enforced.

The shared stack of the `deployed_stack` group (integration/conftest.py) runs on an emulator with
enforced IAM (embedded_aws/iam.py): the admin renders the policy (deployer_policy.yml) and makes a
deployer user with exactly that policy, and the deployer then deploys, re-runs, checks, resizes, turns
on HTTPS, worker autoscaling and an alarm e-mail with a secret rotation, upgrades the image, switches to
Amazon MQ, checks again and tears down. Every request the deployer made is in the emulator's IAM log: none may
have been denied, and every action of the policy must have been used or be listed with the reason the
run cannot show it. The resource scoping that the emulator does not judge is checked against AWS's
service authorization data (policy_sentry): every action exists, every ARN fits each of its actions,
every action's dependent actions are granted, and "*" is used only where AWS offers nothing narrower.
The task roles' policies, read back from the deployed stack, get the same scoping check.
"""

from __future__ import annotations

import json
import re

import boto3
import pytest
import yaml
from ansible_runner import ROOT, run_playbook
from conftest import REMOVED_FOR_THE_DENIAL_TEST, TASK_ROLES
from emulator import REGION
from policy_sentry.querying.actions import get_action_data

pytestmark = pytest.mark.xdist_group("deployed_stack")

POLICY_VARS = yaml.safe_load((ROOT / "playbooks" / "vars" / "deployer_policy.yml").read_text())
NOT_EXERCISED: dict[str, str] = POLICY_VARS["deployer_policy_not_exercised"]
# Statements granted on "*" although some of their actions take ARNs: those ARNs hold ids AWS assigns
# (VPC, subnet, gateway, security group, namespace, broker, scalable target), never the stack's name; or the
# call names no resource of the type it optionally takes (ListTasks on Fargate, DescribeFileSystems by token).
BROAD_BY_NECESSITY = {
    "Network",
    "ServiceDiscovery",
    "WorkerAutoscaling",
    "AmazonMqBroker",
    "ServiceLinkedRolesOnFirstUse",
    "StackTaskList",
    "BrokerFileSystemList",
}
# Service Quotas reads the quotas of these services with the caller's rights; the preflight reads only Fargate's
# and EC2's (L-3032A538, L-36FBB829, L-0263D0A3), which need none.
QUOTAS_NOT_READ = "the quotas of a service the preflight does not read"
# Dependent actions AWS lists for features the stack does not use.
UNUSED_DEPENDENCIES = {
    "rds:CreateTenantDatabase": "multi-tenant RDS for Oracle",
    "rds:DeleteTenantDatabase": "multi-tenant RDS for Oracle",
    "secretsmanager:RotateSecret": "an RDS-managed master password (the stack rotates its own)",
    "kms:CreateGrant": "an RDS instance encrypted with a customer managed key (the stack uses RDS's own)",
    "secretsmanager:CreateSecret": "an RDS-managed master password (the stack stores its own)",
    "autoscaling:DescribeAccountLimits": QUOTAS_NOT_READ,
    "cloudformation:DescribeAccountLimits": QUOTAS_NOT_READ,
    "dynamodb:DescribeLimits": QUOTAS_NOT_READ,
    "elasticloadbalancing:DescribeAccountLimits": QUOTAS_NOT_READ,
    "iam:GetAccountSummary": QUOTAS_NOT_READ,
    "kinesis:DescribeLimits": QUOTAS_NOT_READ,
    "rds:DescribeAccountAttributes": QUOTAS_NOT_READ,
    "route53:GetAccountLimit": QUOTAS_NOT_READ,
}


def test_the_whole_life_of_a_stack_runs_under_the_deployer_policy(switched, deployed):
    assert switched.torn_down.returncode == 0
    denied = sorted({(r["action"], r["resource"]) for r in deployed.deployer.requests() if not r["allowed"]})
    assert denied == [], f"the deployer was denied: {denied}"


@pytest.mark.parametrize("probe", ["airflow_task_logs", "airflow_buckets", "execution_secrets", "worker_demand"])
def test_each_task_role_can_make_its_calls_with_its_own_credentials(switched, probe):
    """Regression: Airflow's CloudWatch handler creates its log group when it cannot list it, which the
    task role was not allowed (AccessDenied on logs:CreateLogGroup in every task and dag-processor)."""
    result = switched.probes[probe]
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def granted_actions(policy: dict) -> set[str]:
    actions = set()
    for statement in policy["Statement"]:
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def test_every_granted_action_is_used_or_says_why_not(switched, deployed):
    used = {r["action"] for r in deployed.deployer.requests()}
    granted = granted_actions(deployed.deployer.policy)
    needless = sorted(granted - used - set(NOT_EXERCISED))
    assert needless == [], f"granted but never used and not explained: {needless}"
    stale = sorted(set(NOT_EXERCISED) & used)
    assert stale == [], f"listed as not exercised but used by the run: {stale}"
    assert set(NOT_EXERCISED) <= granted, sorted(set(NOT_EXERCISED) - granted)


def test_a_missing_permission_fails_the_deploy_naming_the_action(denied):
    """The policy without one action it needs stops the deploy at that action (run last: conftest.denied)."""
    assert denied.returncode != 0
    assert "AccessDenied" in denied.output and REMOVED_FOR_THE_DENIAL_TEST in denied.output, denied.output[-3000:]


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


def test_the_deployer_policy_names_only_real_actions_on_resources_they_take(deployer):
    assert scoping_problems(deployer.policy, BROAD_BY_NECESSITY) == []


def test_the_deployer_policy_grants_what_its_actions_depend_on(deployer):
    granted = granted_actions(deployer.policy)
    missing = sorted(
        f"{dependency} (for {action})"
        for action in granted
        for row in action_rows(action)
        for dependency in row.get("dependent_actions") or []
        if dependency not in granted and dependency not in UNUSED_DEPENDENCIES
    )
    assert missing == []


@pytest.mark.parametrize("role", TASK_ROLES)
def test_each_task_role_policy_is_scoped(switched, role):
    # The task role may put metrics only into the stack's namespace: PutMetricData takes no resource, so
    # its "*" is narrowed by the cloudwatch:namespace condition instead.
    policy = switched.task_role_policies[role]
    broad = {
        s.get("Sid")
        for s in policy["Statement"]
        if s.get("Condition", {}).get("StringEquals", {}).get("cloudwatch:namespace")
    }
    assert scoping_problems(policy, broad) == []


def test_the_policy_is_rendered_for_the_stack_region_and_account(deployer, stack_emulator):
    text = json.dumps(deployer.policy)
    account = boto3.client(
        "sts",
        endpoint_url=stack_emulator.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).get_caller_identity()["Account"]
    assert f"arn:aws:secretsmanager:{REGION}:{account}:secret:airflow/*" in text
    assert "{{" not in text


def test_the_policy_takes_the_partition_of_the_caller(emulator, tmp_path):
    """In a China region every ARN is arn:aws-cn: (the partition comes from the caller's ARN, not a literal).

    On the emulator without IAM enforced: the enforcing one knows the admin's key in the aws partition only."""
    policy_file = tmp_path / "policy-cn.json"
    rendered = run_playbook(
        "deployer_policy.yml",
        emulator.env(),
        extra_vars={"deployer_policy_file": str(policy_file), "aws_region": "cn-north-1"},
    )
    assert rendered.returncode == 0, rendered.output[-3000:]
    arns = [
        arn
        for statement in json.loads(policy_file.read_text())["Statement"]
        for arn in ([statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"])
        if arn != "*"
    ]
    assert arns and all(arn.startswith("arn:aws-cn:") for arn in arns), arns
