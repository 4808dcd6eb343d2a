#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage one ECR repository with its scanning, tag mutability, lifecycle policy and tags (project module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_repository
short_description: Create, update or delete an ECR repository with its settings and tags
description:
  - Creates an ECR private repository with scan on push, tag mutability, a lifecycle policy and tags, keeps
    those settings as given on later runs, or deletes it.
  - M(community.aws.ecs_ecr) sets scanning, mutability and the lifecycle policy but cannot tag a repository;
    here the tags are given to C(CreateRepository) and kept with C(TagResource)/C(UntagResource).
  - The repository is read with one C(DescribeRepositories) (its answer carries the scanning setting, the tag
    mutability and the URI), one C(GetLifecyclePolicy) when O(lifecycle_policy) is given and one
    C(ListTagsForResource) when O(tags) is given. When nothing differs those are the only calls.
  - With O(state=absent) the repository is deleted with C(DeleteRepository); O(force_delete) deletes it with
    its images. A missing repository is no change.
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  name:
    description: Repository name, such as V(airflow/airflow).
    type: str
    required: true
  scan_on_push:
    description: Scan every pushed image for vulnerabilities.
    type: bool
    default: true
  image_tag_mutability:
    description: Whether a tag may be moved to another image.
    type: str
    choices: [MUTABLE, IMMUTABLE]
    default: IMMUTABLE
  lifecycle_policy:
    description:
      - The lifecycle policy document (a dict, compared as JSON). Not read nor changed when not given.
    type: dict
  tags:
    description: Tags of the repository. Not read nor changed when not given.
    type: dict
  purge_tags:
    description: Remove tags not in O(tags).
    type: bool
    default: true
  force_delete:
    description: With O(state=absent), delete the repository even when it holds images (they go with it).
    type: bool
    default: false
  state:
    description: V(present) creates and updates the repository; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - IAM actions used are ecr:DescribeRepositories, ecr:CreateRepository, ecr:GetLifecyclePolicy,
    ecr:PutLifecyclePolicy, ecr:PutImageScanningConfiguration, ecr:PutImageTagMutability,
    ecr:ListTagsForResource, ecr:TagResource, ecr:UntagResource and ecr:DeleteRepository.
seealso:
  - module: community.aws.ecs_ecr
"""

EXAMPLES = r"""
- name: Create the image repository (scan on push, immutable tags, last 10 images kept)
  ecr_repository:
    name: airflow/airflow
    lifecycle_policy:
      rules:
        - rulePriority: 1
          description: keep the last 10 images
          selection: {tagStatus: any, countType: imageCountMoreThan, countNumber: 10}
          action: {type: expire}
    tags: {"airflow-ecs:stack": airflow}

- name: Delete it with its images
  ecr_repository:
    name: airflow/airflow
    force_delete: true
    state: absent
"""

RETURN = r"""
repository:
  description: The repository after the run (in check mode, what it would be); empty when it does not exist.
  returned: always
  type: dict
  contains:
    name: {description: Repository name., type: str}
    arn: {description: Repository ARN; null in check mode for a new one., type: str}
    uri: {description: Repository URI (registry/name); null in check mode for a new one., type: str}
    registry_id: {description: Account id of the registry., type: str}
changes:
  description:
    - What the run set, of V(created), V(scan_on_push), V(image_tag_mutability), V(lifecycle_policy), V(tags),
      V(deleted).
  returned: always
  type: list
  elements: str
"""

import contextlib
import json
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.desired_tags import desired_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)

NOT_FOUND = "RepositoryNotFoundException"
NO_POLICY = "LifecyclePolicyNotFoundException"


def read(module: AnsibleAWSModule, client: Any, name: str) -> dict[str, Any] | None:
    try:
        return client.describe_repositories(repositoryNames=[name], aws_retry=True)["repositories"][0]
    except is_boto3_error_code(NOT_FOUND):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read ECR repository '{name}'")


def read_policy(module: AnsibleAWSModule, client: Any, name: str) -> dict | None:
    try:
        return json.loads(client.get_lifecycle_policy(repositoryName=name, aws_retry=True)["lifecyclePolicyText"])
    except is_boto3_error_code(NO_POLICY):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read the lifecycle policy of ECR repository '{name}'")


def shown(repo: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": repo["repositoryName"],
        "arn": repo.get("repositoryArn"),
        "uri": repo.get("repositoryUri"),
        "registry_id": repo.get("registryId"),
    }


def call(module: AnsibleAWSModule, what: str, method: Any, **kwargs: Any) -> Any:
    try:
        return method(aws_retry=True, **kwargs)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to {what} of ECR repository '{module.params['name']}'")


def ensure_present(module: AnsibleAWSModule, client: Any) -> tuple[dict, list[str], dict | None, dict]:
    params = module.params
    name = params["name"]
    policy = params["lifecycle_policy"]
    wanted_tags = {k: str(v) for k, v in params["tags"].items()} if params["tags"] is not None else None
    after: dict[str, Any] = {
        "scan_on_push": params["scan_on_push"],
        "image_tag_mutability": params["image_tag_mutability"],
    }
    if policy is not None:
        after["lifecycle_policy"] = policy
    current = read(module, client, name)
    if current is None:
        if wanted_tags is not None:
            after["tags"] = wanted_tags
        repo: dict[str, Any] = {"repositoryName": name}
        if not module.check_mode:
            kwargs: dict[str, Any] = (
                {"tags": ansible_dict_to_boto3_tag_list(wanted_tags, "Key", "Value")} if wanted_tags else {}
            )
            repo = call(
                module,
                "create",
                client.create_repository,
                repositoryName=name,
                imageTagMutability=params["image_tag_mutability"],
                imageScanningConfiguration={"scanOnPush": params["scan_on_push"]},
                **kwargs,
            )["repository"]
            if policy is not None:
                call(module, "set the lifecycle policy", client.put_lifecycle_policy, repositoryName=name,
                     lifecyclePolicyText=json.dumps(policy, sort_keys=True))  # fmt: skip
        return shown(repo), ["created"], None, after

    before: dict[str, Any] = {
        "scan_on_push": current.get("imageScanningConfiguration", {}).get("scanOnPush", False),
        "image_tag_mutability": current.get("imageTagMutability", "MUTABLE"),
    }
    if policy is not None:
        before["lifecycle_policy"] = read_policy(module, client, name)
    tags = None
    if wanted_tags is not None:
        listed = call(module, "read the tags", client.list_tags_for_resource, resourceArn=current["repositoryArn"])
        tags = boto3_tag_list_to_ansible_dict(listed.get("tags", []), "Key", "Value")
        before["tags"] = tags
        after["tags"] = desired_tags({"tags": wanted_tags, "purge_tags": params["purge_tags"]}, tags)
    changes = [key for key in after if before.get(key) != after[key]]
    if changes and not module.check_mode:
        if "scan_on_push" in changes:
            call(module, "set scan on push", client.put_image_scanning_configuration, repositoryName=name,
                 imageScanningConfiguration={"scanOnPush": params["scan_on_push"]})  # fmt: skip
        if "image_tag_mutability" in changes:
            call(module, "set the tag mutability", client.put_image_tag_mutability, repositoryName=name,
                 imageTagMutability=params["image_tag_mutability"])  # fmt: skip
        if "lifecycle_policy" in changes:
            call(module, "set the lifecycle policy", client.put_lifecycle_policy, repositoryName=name,
                 lifecyclePolicyText=json.dumps(policy, sort_keys=True))  # fmt: skip
        if "tags" in changes:
            unset = sorted(set(tags) - set(after["tags"]))
            to_set = {k: v for k, v in after["tags"].items() if tags.get(k) != v}
            if unset:
                call(module, "remove tags", client.untag_resource, resourceArn=current["repositoryArn"], tagKeys=unset)
            if to_set:
                call(module, "set tags", client.tag_resource, resourceArn=current["repositoryArn"],
                     tags=ansible_dict_to_boto3_tag_list(to_set, "Key", "Value"))  # fmt: skip
    return shown(current), changes, before, after


def ensure_absent(module: AnsibleAWSModule, client: Any) -> tuple[dict, list[str], dict | None]:
    name = module.params["name"]
    if module.check_mode or module._diff:
        current = read(module, client, name)
        if current is None:
            return {}, [], None
        if module.check_mode:
            return {}, ["deleted"], shown(current)
    try:
        deleted = client.delete_repository(repositoryName=name, force=module.params["force_delete"], aws_retry=True)
    except is_boto3_error_code(NOT_FOUND):
        return {}, [], None
    except is_boto3_error_code("RepositoryNotEmptyException"):  # pylint: disable=duplicate-except
        module.fail_json(msg=f"ECR repository '{name}' still holds images: delete them or set force_delete")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete ECR repository '{name}'")
    return {}, ["deleted"], shown(deleted["repository"])


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            scan_on_push=dict(type="bool", default=True),
            image_tag_mutability=dict(type="str", default="IMMUTABLE", choices=["MUTABLE", "IMMUTABLE"]),
            lifecycle_policy=dict(type="dict"),
            tags=dict(type="dict"),
            purge_tags=dict(type="bool", default=True),
            force_delete=dict(type="bool", default=False),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    client = module.client("ecr", retry_decorator=jittered_backoff())
    if module.params["state"] == "present":
        repository, changes, before, after = ensure_present(module, client)
    else:
        repository, changes, before = ensure_absent(module, client)
        after = None
    result: dict[str, Any] = {"changed": bool(changes), "changes": changes, "repository": repository}
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
