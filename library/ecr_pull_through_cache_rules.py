#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage ECR pull-through cache rules (project module; amazon.aws and community.aws have none)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_pull_through_cache_rules
short_description: Create, replace or delete ECR pull-through cache rules
description:
  - "Keeps the given pull-through cache rules of the account's private registry in the region: each maps a
    repository prefix (such as V(ecr-public)) to an upstream registry (such as V(public.ecr.aws)). A pull of
    C(<registry>/<prefix>/<upstream repository>:<tag>) then fetches the image from the upstream registry once
    and caches it in a repository ECR creates."
  - Neither amazon.aws nor community.aws has a module for these rules.
  - The rules are read with one C(DescribePullThroughCacheRules) (all of the registry's rules, paginated; AWS
    answers C(PullThroughCacheRuleNotFoundException) when a prefix asked for by name is missing). A missing
    rule costs one C(CreatePullThroughCacheRule). ECR cannot change a rule's upstream registry (only its
    credential), so a rule with another upstream is deleted and created again.
  - Rules of the registry not listed in O(rules) are left alone.
  - With O(state=absent) each rule of O(rules) is deleted with one C(DeletePullThroughCacheRule); a missing rule is
    no change. Only O(rules[].prefix) is read then.
  - "A rule is account-wide (one per prefix) while several stacks may pull through it. With O(state=absent),
    O(keep_while_repositories_match) keeps the rule (and its cache) while the registry holds a repository
    matching that pattern: another stack still using it. O(delete_cached_repositories) also deletes the
    repositories ECR created under the rule's prefix, with their images (C(DescribeRepositories) once, one
    C(DeleteRepository) each)."
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  rules:
    description: The rules.
    type: list
    elements: dict
    required: true
    suboptions:
      prefix:
        description: The repository prefix, 2 to 30 characters of a-z, 0-9, C(.), C(_), C(-) and C(/).
        type: str
        required: true
      upstream_registry_url:
        description: The upstream registry, such as V(public.ecr.aws). Required with O(state=present).
        type: str
      credential_arn:
        description: The Secrets Manager secret of the upstream's credentials (registries that need them).
        type: str
  keep_while_repositories_match:
    description:
      - With O(state=absent), a shell-style pattern of repository names (such as V(*/airflow)); while the
        registry holds a repository matching it, the rules and their cached repositories are kept.
    type: str
  delete_cached_repositories:
    description:
      - With O(state=absent), also delete the repositories under each deleted rule's prefix, with their images
        (ECR made them on the first pull through the rule; a pull makes them again).
    type: bool
    default: false
  state:
    description: V(present) creates the rules (and replaces a rule with another upstream); V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - IAM actions used are ecr:DescribePullThroughCacheRules, ecr:CreatePullThroughCacheRule and
    ecr:DeletePullThroughCacheRule. A task that pulls through a rule needs ecr:BatchImportUpstreamImage and
    ecr:CreateRepository on the C(<prefix>/*) repositories (ECR creates the cache repository on first pull).
"""

EXAMPLES = r"""
- name: Pull public images (Docker Official Images on ECR Public) through the private registry
  ecr_pull_through_cache_rules:
    rules:
      - prefix: ecr-public
        upstream_registry_url: public.ecr.aws
# An image is then pulled as <account>.dkr.ecr.<region>.amazonaws.com/ecr-public/docker/library/rabbitmq:4.1.4
"""

RETURN = r"""
rules:
  description: Every rule of O(rules) after the run, by prefix (in check mode, what it would be).
  returned: always
  type: dict
  contains:
    upstream_registry_url: {description: The upstream registry; null when the rule does not exist., type: str}
    changed: {description: Whether the run created, replaced or deleted the rule., type: bool}
    action: {description: "V(created), V(replaced), V(deleted) or V(none).", type: str}
kept_for:
  description: With O(state=absent), the repositories matching O(keep_while_repositories_match) that kept the rules.
  returned: always
  type: list
  elements: str
deleted_repositories:
  description: With O(state=absent), the cached repositories deleted (in check mode, that would be).
  returned: always
  type: list
  elements: str
registry_id:
  description: The account id of the private registry (from ECR's answers); null when ECR showed no rule.
  returned: always
  type: str
"""

import contextlib
import fnmatch
import re
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

PREFIX = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
NOT_FOUND = "PullThroughCacheRuleNotFoundException"


def check_input(module: AnsibleAWSModule) -> list[dict[str, Any]]:
    problems = []
    prefixes = [rule["prefix"] for rule in module.params["rules"]]
    for rule in module.params["rules"]:
        prefix = rule["prefix"]
        if not (2 <= len(prefix) <= 30 and PREFIX.fullmatch(prefix)):
            problems.append(f"prefix {prefix!r} must be 2-30 characters of a-z, 0-9, '.', '_', '-' and '/'")
        if module.params["state"] == "present" and not rule["upstream_registry_url"]:
            problems.append(f"rule {prefix!r} needs upstream_registry_url with state present")
    repeated = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if repeated:
        problems.append(f"rules name the prefix {', '.join(repeated)} twice")
    if problems:
        module.fail_json(
            msg="Cannot manage the pull-through cache rules: " + "; ".join(problems) + ". Nothing was changed."
        )
    return module.params["rules"]


def read_rules(module: AnsibleAWSModule, client: Any) -> dict[str, dict[str, Any]]:
    try:
        pages = client.get_paginator("describe_pull_through_cache_rules").paginate().build_full_result()
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg="Failed to read the ECR pull-through cache rules")
    return {rule["ecrRepositoryPrefix"]: rule for rule in pages.get("pullThroughCacheRules", [])}


def create(module: AnsibleAWSModule, client: Any, rule: dict[str, Any]) -> dict[str, Any]:
    kwargs = {"credentialArn": rule["credential_arn"]} if rule["credential_arn"] else {}
    try:
        return client.create_pull_through_cache_rule(
            ecrRepositoryPrefix=rule["prefix"],
            upstreamRegistryUrl=rule["upstream_registry_url"],
            aws_retry=True,
            **kwargs,
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to create the pull-through cache rule '{rule['prefix']}'")


def delete(module: AnsibleAWSModule, client: Any, prefix: str) -> bool:
    try:
        client.delete_pull_through_cache_rule(ecrRepositoryPrefix=prefix, aws_retry=True)
    except is_boto3_error_code(NOT_FOUND):
        return False
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete the pull-through cache rule '{prefix}'")
    return True


def read_repositories(module: AnsibleAWSModule, client: Any) -> list[str]:
    try:
        pages = client.get_paginator("describe_repositories").paginate().build_full_result()
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg="Failed to list the ECR repositories")
    return sorted(repo["repositoryName"] for repo in pages.get("repositories", []))


def delete_repository(module: AnsibleAWSModule, client: Any, name: str) -> None:
    try:
        client.delete_repository(repositoryName=name, force=True, aws_retry=True)
    except is_boto3_error_code("RepositoryNotFoundException"):
        pass
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete the cached repository '{name}'")


def ensure_absent(module: AnsibleAWSModule, client: Any, rules: list[dict[str, Any]]) -> dict[str, Any]:
    """Delete the rules (and their cached repositories), unless a repository matching the pattern remains."""
    pattern = module.params["keep_while_repositories_match"]
    need_list = pattern or module.params["delete_cached_repositories"]
    repositories = read_repositories(module, client) if need_list else []
    kept_for = [name for name in repositories if pattern and fnmatch.fnmatchcase(name, pattern)]
    current = read_rules(module, client) if module.check_mode or module._diff or kept_for else {}
    results: dict[str, Any] = {}
    deleted_repositories: list[str] = []
    for rule in rules:
        prefix = rule["prefix"]
        if kept_for:
            results[prefix] = {"upstream_registry_url": seen(current[prefix])["upstream_registry_url"]
                               if prefix in current else None, "changed": False, "action": "none"}  # fmt: skip
            continue
        deleted = (prefix in current) if module.check_mode else delete(module, client, prefix)
        cached = [name for name in repositories if name.startswith(prefix + "/")]
        if module.params["delete_cached_repositories"]:
            for name in cached:
                if not module.check_mode:
                    delete_repository(module, client, name)
            deleted_repositories += cached
        changed = deleted or bool(cached and module.params["delete_cached_repositories"])
        results[prefix] = {
            "upstream_registry_url": None,
            "changed": changed,
            "action": "deleted" if deleted else "none",
        }
    before = {prefix: seen(rule) for prefix, rule in current.items() if prefix in results}
    result: dict[str, Any] = {
        "changed": any(entry["changed"] for entry in results.values()),
        "rules": results,
        "kept_for": kept_for,
        "deleted_repositories": deleted_repositories,
        "registry_id": next((rule.get("registryId") for rule in current.values()), None),
    }
    if module._diff:
        result["diff"] = {"before": before, "after": {} if not kept_for else before}
    return result


def seen(rule: dict[str, Any]) -> dict[str, Any]:
    return {"upstream_registry_url": rule["upstreamRegistryUrl"], "credential_arn": rule.get("credentialArn")}


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            rules=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    prefix=dict(type="str", required=True),
                    upstream_registry_url=dict(type="str"),
                    credential_arn=dict(type="str"),
                ),
            ),
            keep_while_repositories_match=dict(type="str"),
            delete_cached_repositories=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    rules = check_input(module)
    client = module.client("ecr", retry_decorator=jittered_backoff())
    if module.params["state"] == "absent":
        module.exit_json(**ensure_absent(module, client, rules))
    current = read_rules(module, client)
    registry_id = next((rule.get("registryId") for rule in current.values()), None)
    results: dict[str, Any] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for rule in rules:
        prefix = rule["prefix"]
        have = current.get(prefix)
        if have is not None:
            before[prefix] = seen(have)
        wanted = {"upstream_registry_url": rule["upstream_registry_url"], "credential_arn": rule["credential_arn"]}
        after[prefix] = wanted
        action = "none" if have is not None and seen(have) == wanted else "replaced" if have is not None else "created"
        if action != "none" and not module.check_mode:
            if have is not None:
                delete(module, client, prefix)
            registry_id = create(module, client, rule).get("registryId", registry_id)
        results[prefix] = {"upstream_registry_url": wanted["upstream_registry_url"], "changed": action != "none",
                           "action": action}  # fmt: skip
    result: dict[str, Any] = {
        "changed": any(entry["changed"] for entry in results.values()),
        "rules": results,
        "kept_for": [],
        "deleted_repositories": [],
        "registry_id": registry_id,
    }
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
