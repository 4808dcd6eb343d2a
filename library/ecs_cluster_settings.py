#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_cluster_settings
short_description: Manage Container Insights, the ECS Exec audit log and tags of an existing ECS cluster
description:
  - Sets the C(containerInsights) cluster setting, the ECS Exec configuration (where sessions are logged) and
    the tags of an ECS cluster that already exists.
  - M(community.aws.ecs_cluster) creates and deletes clusters and manages their capacity providers, but
    cannot set Container Insights, the ECS Exec configuration or tags. Run it first, then this module.
  - The module never creates or deletes a cluster. It fails when the cluster does not exist or is
    C(INACTIVE) (deleted).
  - Only what differs is changed. The setting is changed with C(UpdateCluster) and the tags with
    C(TagResource) and C(UntagResource).
  - Options that are not given are left alone. Without I(container_insights) the setting is not
    touched; without I(tags) the tags are not touched.
  - Supports check mode and diff mode. In check mode nothing is changed; the result shows the cluster as
    it would be after the change.
author:
  - airflow-ecs project
options:
  cluster:
    description:
      - Name or ARN of the ECS cluster.
    type: str
    required: true
  container_insights:
    description:
      - CloudWatch Container Insights for the cluster.
      - C(enhanced) is Container Insights with enhanced observability (per-container metrics).
      - Booleans are not accepted. To set this from a boolean variable, pass
        C("{{ 'enabled' if my_flag else 'disabled' }}").
      - When not given, the setting is left as it is.
    type: str
    choices: ['enabled', 'disabled', 'enhanced']
  execute_command_configuration:
    description:
      - The cluster's C(executeCommandConfiguration) in the ECS API form, for example
        V({"logging": "OVERRIDE", "logConfiguration": {"s3BucketName": "b", "s3KeyPrefix": "exec/",
        "s3EncryptionEnabled": true}}), which records every ECS Exec session's input and output in S3.
      - When not given, the configuration is left as it is.
    type: dict
  tags:
    description:
      - Tags the cluster should have, as a dict.
      - When not given, the tags are left as they are.
      - With I(purge_tags=true) and I(tags={}) every tag is removed.
    type: dict
    aliases: ['resource_tags']
  purge_tags:
    description:
      - Remove tags that are not in I(tags).
      - Has no effect when I(tags) is not given.
      - Tags whose key starts with C(aws:) are never removed.
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - The setting is changed with C(UpdateCluster) and its C(settings) parameter, which the ECS API accepts
    the same way as C(UpdateClusterSettings). (The moto emulator implements only C(UpdateCluster).)
seealso:
  - module: community.aws.ecs_cluster
"""

EXAMPLES = r"""
- name: Create the ECS cluster
  community.aws.ecs_cluster:
    name: airflow
    capacity_providers: [FARGATE, FARGATE_SPOT]
    purge_capacity_providers: true
    state: present

- name: Turn on Container Insights and tag the cluster
  ecs_cluster_settings:
    cluster: airflow
    container_insights: enabled
    tags:
      airflow-ecs:stack: airflow
      team: data

- name: Set Container Insights from a boolean variable and leave the tags alone
  ecs_cluster_settings:
    cluster: airflow
    container_insights: "{{ 'enabled' if ecs_cluster_container_insights else 'disabled' }}"

- name: Add a tag and keep the ones already there
  ecs_cluster_settings:
    cluster: arn:aws:ecs:us-east-1:123456789012:cluster/airflow
    tags:
      cost-center: "4711"
    purge_tags: false
  register: cluster_settings

- name: Show the cluster's tags
  ansible.builtin.debug:
    var: cluster_settings.cluster.tags
"""

RETURN = r"""
cluster:
  description:
    - The cluster as described by ECS after the change, in snake_case. In check mode, the cluster as it
      would be after the change.
  returned: success
  type: dict
  contains:
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: airflow
    cluster_arn:
      description: ARN of the cluster.
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:cluster/airflow
    status:
      description: Status of the cluster; always C(ACTIVE) here.
      type: str
      sample: ACTIVE
    container_insights:
      description: Value of the C(containerInsights) setting, or null if ECS did not report it.
      type: str
      sample: enabled
    settings:
      description: The cluster settings as ECS returns them.
      type: list
      elements: dict
      sample: [{"name": "containerInsights", "value": "enabled"}]
      contains:
        name:
          description: Name of the setting.
          type: str
          sample: containerInsights
        value:
          description: Value of the setting.
          type: str
          sample: enabled
    tags:
      description: Tags of the cluster, as a dict.
      type: dict
      sample: {"airflow-ecs:stack": "airflow", "team": "data"}
diff:
  description: Container Insights, the ECS Exec configuration and tags before and after the change.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: C(container_insights), C(execute_command_configuration) and C(tags) before the change.
      type: dict
      sample: {"container_insights": "disabled", "tags": {}}
    after:
      description: C(container_insights), C(execute_command_configuration) and C(tags) after the change.
      type: dict
      sample: {"container_insights": "enabled", "tags": {"team": "data"}}
"""

import contextlib
import copy
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import covers
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import normalize_boto3_result
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

INSIGHTS = "containerInsights"


def argument_spec() -> dict[str, Any]:
    return dict(
        cluster=dict(type="str", required=True),
        container_insights=dict(type="str", choices=["enabled", "disabled", "enhanced"]),
        execute_command_configuration=dict(type="dict"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )


def describe_cluster(module: AnsibleAWSModule, client: Any, cluster: str) -> dict[str, Any]:
    """The ACTIVE cluster with its settings and tags; fail if it is missing or deleted."""
    try:
        response = client.describe_clusters(
            clusters=[cluster], include=["SETTINGS", "TAGS", "CONFIGURATIONS"], aws_retry=True
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe ECS cluster '{cluster}'")
    clusters = response.get("clusters", [])
    if not clusters:
        module.fail_json(msg=f"ECS cluster '{cluster}' not found; create it first")
    found = clusters[0]
    if found.get("status") != "ACTIVE":
        module.fail_json(
            msg=f"ECS cluster '{cluster}' not found (status {found.get('status')}); create it first",
        )
    return found


def insights_of(cluster: dict[str, Any]) -> str | None:
    for setting in cluster.get("settings") or []:
        if setting.get("name") == INSIGHTS:
            return setting.get("value")
    return None


def exec_configuration_of(cluster: dict[str, Any]) -> dict[str, Any]:
    return (cluster.get("configuration") or {}).get("executeCommandConfiguration") or {}


def update_exec_configuration(module: AnsibleAWSModule, client: Any, cluster: dict[str, Any], wanted: dict) -> None:
    try:
        client.update_cluster(
            cluster=cluster["clusterArn"], configuration={"executeCommandConfiguration": wanted}, aws_retry=True
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e, msg=f"Failed to set the ECS Exec configuration of ECS cluster '{cluster['clusterName']}'"
        )


def tags_of(cluster: dict[str, Any]) -> dict[str, str]:
    return boto3_tag_list_to_ansible_dict(cluster.get("tags") or [], "key", "value")


def diff_view(cluster: dict[str, Any]) -> dict[str, Any]:
    return {
        "container_insights": insights_of(cluster),
        "execute_command_configuration": exec_configuration_of(cluster),
        "tags": tags_of(cluster),
    }


def update_insights(module: AnsibleAWSModule, client: Any, cluster: dict[str, Any], value: str) -> None:
    name = cluster["clusterName"]
    try:
        client.update_cluster(
            cluster=cluster["clusterArn"], settings=[{"name": INSIGHTS, "value": value}], aws_retry=True
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set Container Insights to '{value}' on ECS cluster '{name}'")


def update_tags(
    module: AnsibleAWSModule, client: Any, cluster: dict[str, Any], to_set: dict[str, Any], to_unset: list[str]
) -> None:
    name, arn = cluster["clusterName"], cluster["clusterArn"]
    if to_unset:
        try:
            client.untag_resource(resourceArn=arn, tagKeys=to_unset, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to remove tags {', '.join(to_unset)} from ECS cluster '{name}'")
    if to_set:
        try:
            client.tag_resource(
                resourceArn=arn, tags=ansible_dict_to_boto3_tag_list(to_set, "key", "value"), aws_retry=True
            )
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to tag ECS cluster '{name}' with {', '.join(to_set)}")


def predicted(
    cluster: dict[str, Any],
    insights: str | None,
    exec_configuration: dict | None,
    to_set: dict[str, Any],
    to_unset: list[str],
) -> dict[str, Any]:
    """The cluster as it will be after the changes, for check mode."""
    after = copy.deepcopy(cluster)
    if exec_configuration is not None:
        after["configuration"] = {
            **(after.get("configuration") or {}),
            "executeCommandConfiguration": exec_configuration,
        }
    if insights is not None:
        others = [s for s in after.get("settings") or [] if s.get("name") != INSIGHTS]
        after["settings"] = [*others, {"name": INSIGHTS, "value": insights}]
    tags = {key: value for key, value in tags_of(after).items() if key not in to_unset}
    tags.update({key: str(value) for key, value in to_set.items()})
    after["tags"] = ansible_dict_to_boto3_tag_list(tags, "key", "value")
    return after


def cluster_summary(cluster: dict[str, Any]) -> dict[str, Any]:
    """snake_case cluster with tags as a dict and the Container Insights value picked out."""
    cluster = normalize_boto3_result(cluster)
    summary = camel_dict_to_snake_dict(cluster, ignore_list=["tags"])
    summary["tags"] = tags_of(cluster)
    summary["settings"] = cluster.get("settings") or []
    summary["container_insights"] = insights_of(cluster)
    return summary


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    client = module.client("ecs", retry_decorator=jittered_backoff())

    cluster = describe_cluster(module, client, params["cluster"])
    insights = params["container_insights"]
    change_insights = insights is not None and insights != insights_of(cluster)
    exec_configuration = params["execute_command_configuration"]
    change_exec = exec_configuration is not None and not covers(exec_configuration_of(cluster), exec_configuration)
    to_set: dict[str, Any] = {}
    to_unset: list[str] = []
    if params["tags"] is not None:
        to_set, to_unset = compare_aws_tags(tags_of(cluster), params["tags"], params["purge_tags"])
    changed = bool(change_insights or change_exec or to_set or to_unset)

    if not changed:
        after = cluster
    elif module.check_mode:
        after = predicted(
            cluster,
            insights if change_insights else None,
            exec_configuration if change_exec else None,
            to_set,
            to_unset,
        )
    else:
        if change_insights:
            update_insights(module, client, cluster, insights)
        if change_exec:
            update_exec_configuration(module, client, cluster, exec_configuration)
        update_tags(module, client, cluster, to_set, to_unset)
        after = describe_cluster(module, client, cluster["clusterArn"])

    result: dict[str, Any] = dict(changed=changed, cluster=cluster_summary(after))
    if module._diff:
        result["diff"] = {"before": diff_view(cluster), "after": diff_view(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
