#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_cluster_settings
short_description: Manage an ECS cluster with its capacity providers, Container Insights, ECS Exec audit log and tags
description:
  - Creates, updates or deletes an ECS cluster with its capacity providers and their default strategy, the
    C(containerInsights) cluster setting, the ECS Exec configuration (where sessions are logged) and its tags, in
    one task. M(community.aws.ecs_cluster) manages the cluster and its capacity providers but cannot set
    Container Insights, the ECS Exec configuration or tags.
  - The cluster is read with one C(DescribeClusters) (settings, tags and configuration included). When nothing
    differs that is the only call.
  - A missing cluster is created only when O(capacity_providers) is given (V([]) too, for a cluster without
    capacity providers), with one C(CreateCluster) that carries the capacity providers, the default strategy,
    Container Insights, the ECS Exec configuration and the tags; nothing is read afterwards.
  - Without O(capacity_providers) the module manages an existing cluster only and never creates one (the ECS Exec
    configuration of the airflow_nodes role is set this way). It then fails when the cluster does not exist or is
    C(INACTIVE) (deleted), before any write.
  - On an existing cluster only what differs is changed. Container Insights and the ECS Exec configuration with
    one C(UpdateCluster), the capacity providers and the strategy with one C(PutClusterCapacityProviders), the
    tags with C(TagResource) and C(UntagResource). The cluster is then read once more for the result.
  - Options that are not given are left alone. Without O(container_insights) the setting is not touched, without
    O(tags) the tags are not touched, without O(capacity_providers) the capacity providers are not touched, and
    without O(default_capacity_provider_strategy) the strategy is not touched.
  - With O(state=absent) the cluster is deleted with C(DeleteCluster). A cluster that does not exist or is
    C(INACTIVE) is gone already, which is no change. Only O(cluster) is read then.
  - Supports check mode and diff mode. In check mode nothing is changed; the result shows the cluster as it would
    be after the change (a cluster still to be created has no C(cluster_arn) yet).
author:
  - airflow-ecs project
options:
  cluster:
    description:
      - Name or ARN of the ECS cluster. A cluster created from an ARN gets the name after C(cluster/).
    type: str
    required: true
  state:
    description:
      - V(present) creates the cluster when it is missing and O(capacity_providers) is given, and updates it.
      - V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  capacity_providers:
    description:
      - The cluster's capacity providers, for example V([FARGATE, FARGATE_SPOT]). Providers not listed are removed;
        the order does not matter.
      - Given, a missing cluster is created. When not given, the capacity providers are left as they are and a
        missing cluster is an error.
    type: list
    elements: str
  default_capacity_provider_strategy:
    description:
      - The cluster's default capacity provider strategy, one item per provider. The order does not matter.
      - Each provider must be one of O(capacity_providers) when that is given.
      - When not given, the strategy is left as it is (and a new cluster has none).
    type: list
    elements: dict
    suboptions:
      capacity_provider:
        description: Name of the capacity provider.
        type: str
        required: true
      weight:
        description: Relative share of tasks placed with this provider, 0 to 1000.
        type: int
        default: 0
      base:
        description: Tasks placed with this provider before the weights apply, 0 to 100000.
        type: int
        default: 0
  container_insights:
    description:
      - CloudWatch Container Insights for the cluster.
      - C(enhanced) is Container Insights with enhanced observability (per-container metrics).
      - Booleans are not accepted. To set this from a boolean variable, pass
        C("{{ 'enabled' if my_flag else 'disabled' }}").
      - When not given, the setting is left as it is (a new cluster gets the account's default).
    type: str
    choices: ['enabled', 'disabled', 'enhanced']
  execute_command_configuration:
    description:
      - >-
        The cluster's C(executeCommandConfiguration) in the ECS API form, for example
        V({"logging": "OVERRIDE", "logConfiguration": {"s3BucketName": "b", "s3KeyPrefix": "exec/",
        "s3EncryptionEnabled": true}}), which records every ECS Exec session's input and output in S3.
      - When not given, the configuration is left as it is.
    type: dict
  tags:
    description:
      - Tags the cluster should have, as a dict.
      - When not given, the tags are left as they are.
      - With O(purge_tags=true) and O(tags={}) every tag is removed.
    type: dict
    aliases: ['resource_tags']
  purge_tags:
    description:
      - Remove tags that are not in O(tags).
      - Has no effect when O(tags) is not given.
      - Tags whose key starts with C(aws:) are never removed.
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls when nothing changes are one C(DescribeClusters). A new cluster costs C(DescribeClusters) and
    C(CreateCluster); a deletion C(DescribeClusters) and C(DeleteCluster).
  - IAM actions used are ecs:DescribeClusters, ecs:CreateCluster (with ecs:TagResource for tags given at
    creation), ecs:UpdateCluster, ecs:PutClusterCapacityProviders, ecs:TagResource, ecs:UntagResource and
    ecs:DeleteCluster.
  - The setting is changed with C(UpdateCluster) and its C(settings) parameter, which the ECS API accepts
    the same way as C(UpdateClusterSettings). (The moto emulator implements only C(UpdateCluster).)
  - The module does not wait after C(CreateCluster), C(PutClusterCapacityProviders) or C(DeleteCluster)
    (M(community.aws.ecs_cluster) did not either). C(DeleteCluster) fails while the cluster still has services
    or tasks; delete those first.
  - Calls and time against M(community.aws.ecs_cluster) followed by this module are in library/README.md.
seealso:
  - module: community.aws.ecs_cluster
"""

EXAMPLES = r"""
- name: Create the ECS cluster with Fargate capacity, Container Insights and tags
  ecs_cluster_settings:
    cluster: airflow
    capacity_providers: [FARGATE, FARGATE_SPOT]
    default_capacity_provider_strategy:
      - {capacity_provider: FARGATE, weight: 1, base: 0}
    container_insights: enabled
    tags:
      airflow-ecs:stack: airflow
      team: data
  register: cluster

- name: Show the cluster's ARN
  ansible.builtin.debug:
    var: cluster.cluster.cluster_arn

- name: Set Container Insights from a boolean variable on the existing cluster, leaving the rest alone
  ecs_cluster_settings:
    cluster: airflow
    container_insights: "{{ 'enabled' if ecs_cluster_container_insights else 'disabled' }}"

- name: Record ECS Exec sessions in S3 (fails if the cluster does not exist)
  ecs_cluster_settings:
    cluster: airflow
    execute_command_configuration:
      logging: OVERRIDE
      logConfiguration: {s3BucketName: airflow-data, s3KeyPrefix: ecs-exec/, s3EncryptionEnabled: true}

- name: Add a tag and keep the ones already there
  ecs_cluster_settings:
    cluster: arn:aws:ecs:us-east-1:123456789012:cluster/airflow
    tags:
      cost-center: "4711"
    purge_tags: false

- name: Delete the cluster
  ecs_cluster_settings:
    cluster: airflow
    state: absent
"""

RETURN = r"""
cluster:
  description:
    - The cluster as described by ECS after the change, in snake_case. In check mode, the cluster as it
      would be after the change.
    - With O(state=absent), the deleted cluster (status C(INACTIVE)), or V({}) when there was none.
  returned: success
  type: dict
  contains:
    cluster_name:
      description: Name of the cluster.
      type: str
      sample: airflow
    cluster_arn:
      description: ARN of the cluster. Missing in check mode for a cluster still to be created.
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:cluster/airflow
    status:
      description: Status of the cluster; C(ACTIVE) with O(state=present).
      type: str
      sample: ACTIVE
    capacity_providers:
      description: The cluster's capacity providers.
      type: list
      elements: str
      sample: [FARGATE, FARGATE_SPOT]
    default_capacity_provider_strategy:
      description: The cluster's default capacity provider strategy.
      type: list
      elements: dict
      sample: [{"capacity_provider": "FARGATE", "weight": 1, "base": 0}]
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
  description:
    - Container Insights, the ECS Exec configuration, tags, capacity providers and default strategy before and
      after the change. A cluster that does not exist (or no longer) is V({}).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The cluster's managed fields before the change.
      type: dict
      sample: {"container_insights": "disabled", "tags": {}, "capacity_providers": []}
    after:
      description: The cluster's managed fields after the change.
      type: dict
      sample: {"container_insights": "enabled", "tags": {"team": "data"}, "capacity_providers": ["FARGATE"]}
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
        state=dict(type="str", choices=["present", "absent"], default="present"),
        capacity_providers=dict(type="list", elements="str"),
        default_capacity_provider_strategy=dict(
            type="list",
            elements="dict",
            options=dict(
                capacity_provider=dict(type="str", required=True),
                weight=dict(type="int", default=0),
                base=dict(type="int", default=0),
            ),
        ),
        container_insights=dict(type="str", choices=["enabled", "disabled", "enhanced"]),
        execute_command_configuration=dict(type="dict"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )


def check_input(module: AnsibleAWSModule) -> None:
    """Refuse a strategy AWS would refuse, before the first call."""
    params = module.params
    strategy = params["default_capacity_provider_strategy"] or []
    problems = []
    providers = params["capacity_providers"]
    if providers is not None and len(set(providers)) != len(providers):
        problems.append("capacity_providers lists a provider twice")
    named = [item["capacity_provider"] for item in strategy]
    if len(set(named)) != len(named):
        problems.append("default_capacity_provider_strategy names a provider twice")
    for item in strategy:
        name = item["capacity_provider"]
        if providers is not None and name not in providers:
            problems.append(f"default_capacity_provider_strategy names '{name}', which is not in capacity_providers")
        if not 0 <= item["weight"] <= 1000:
            problems.append(f"the weight of '{name}' must be 0 to 1000, not {item['weight']}")
        if not 0 <= item["base"] <= 100000:
            problems.append(f"the base of '{name}' must be 0 to 100000, not {item['base']}")
    if len([item for item in strategy if item["base"] > 0]) > 1:
        problems.append("only one provider of default_capacity_provider_strategy may have a base above 0")
    if problems:
        module.fail_json(msg="; ".join(problems))


def read_cluster(module: AnsibleAWSModule, client: Any, cluster: str) -> dict[str, Any] | None:
    """The cluster with its settings, tags and configuration, whatever its status; None if ECS does not know it."""
    try:
        response = client.describe_clusters(
            clusters=[cluster], include=["SETTINGS", "TAGS", "CONFIGURATIONS"], aws_retry=True
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe ECS cluster '{cluster}'")
    clusters = response.get("clusters") or []
    if clusters:
        return clusters[0]
    failures = [f for f in response.get("failures") or [] if f.get("reason") != "MISSING"]
    if failures:
        module.fail_json(msg=f"Failed to describe ECS cluster '{cluster}': {failures[0].get('reason')}")
    return None


def describe_cluster(module: AnsibleAWSModule, client: Any, cluster: str) -> dict[str, Any]:
    """The ACTIVE cluster with its settings and tags; fail if it is missing or deleted."""
    found = read_cluster(module, client, cluster)
    if found is None:
        module.fail_json(
            msg=f"ECS cluster '{cluster}' not found; create it first (or give capacity_providers to create it here)"
        )
    if found.get("status") != "ACTIVE":
        module.fail_json(
            msg=f"ECS cluster '{cluster}' not found (status {found.get('status')}); create it first "
            "(or give capacity_providers to create it here)",
        )
    return found


def insights_of(cluster: dict[str, Any]) -> str | None:
    for setting in cluster.get("settings") or []:
        if setting.get("name") == INSIGHTS:
            return setting.get("value")
    return None


def exec_configuration_of(cluster: dict[str, Any]) -> dict[str, Any]:
    return (cluster.get("configuration") or {}).get("executeCommandConfiguration") or {}


def tags_of(cluster: dict[str, Any]) -> dict[str, str]:
    return boto3_tag_list_to_ansible_dict(cluster.get("tags") or [], "key", "value")


def providers_of(cluster: dict[str, Any]) -> list[str]:
    return sorted(cluster.get("capacityProviders") or [])


def strategy_of(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    """The default strategy in the API form, sorted by provider, weight and base filled in (ECS omits zeros)."""
    items = cluster.get("defaultCapacityProviderStrategy") or []
    return sorted(
        (
            {"capacityProvider": i["capacityProvider"], "weight": i.get("weight", 0), "base": i.get("base", 0)}
            for i in items
        ),
        key=lambda item: item["capacityProvider"],
    )


def wanted_strategy(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    items = params["default_capacity_provider_strategy"]
    if items is None:
        return None
    return strategy_of(
        {
            "defaultCapacityProviderStrategy": [
                {"capacityProvider": i["capacity_provider"], "weight": i["weight"], "base": i["base"]} for i in items
            ]
        }
    )


def diff_view(cluster: dict[str, Any] | None) -> dict[str, Any]:
    if not cluster or cluster.get("status") != "ACTIVE":
        return {}
    return {
        "container_insights": insights_of(cluster),
        "execute_command_configuration": exec_configuration_of(cluster),
        "tags": tags_of(cluster),
        "capacity_providers": providers_of(cluster),
        "default_capacity_provider_strategy": camel_dict_to_snake_dict({"s": strategy_of(cluster)})["s"],
    }


def cluster_summary(cluster: dict[str, Any] | None) -> dict[str, Any]:
    """snake_case cluster with tags as a dict and the Container Insights value picked out."""
    if not cluster:
        return {}
    cluster = normalize_boto3_result(cluster)
    summary = camel_dict_to_snake_dict(cluster, ignore_list=["tags"])
    summary["tags"] = tags_of(cluster)
    summary["settings"] = cluster.get("settings") or []
    summary["container_insights"] = insights_of(cluster)
    summary["capacity_providers"] = cluster.get("capacityProviders") or []
    summary["default_capacity_provider_strategy"] = camel_dict_to_snake_dict({"s": strategy_of(cluster)})["s"]
    return summary


def create_request(params: dict[str, Any]) -> dict[str, Any]:
    """CreateCluster's parameters: the cluster with everything given, in one call."""
    request: dict[str, Any] = {
        "clusterName": params["cluster"].split("/")[-1],
        "capacityProviders": params["capacity_providers"],
    }
    strategy = wanted_strategy(params)
    if strategy:
        request["defaultCapacityProviderStrategy"] = strategy
    if params["container_insights"] is not None:
        request["settings"] = [{"name": INSIGHTS, "value": params["container_insights"]}]
    if params["execute_command_configuration"] is not None:
        request["configuration"] = {"executeCommandConfiguration": params["execute_command_configuration"]}
    if params["tags"]:
        request["tags"] = ansible_dict_to_boto3_tag_list(params["tags"], "key", "value")
    return request


def create_cluster(module: AnsibleAWSModule, client: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The new cluster; CreateCluster's answer, completed with what was sent where ECS leaves a field out."""
    if module.check_mode:
        return {"status": "ACTIVE", **request}
    try:
        created = client.create_cluster(**request, aws_retry=True)["cluster"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to create ECS cluster '{request['clusterName']}'")
    return {**request, **{key: value for key, value in created.items() if value not in (None, [], {})}}


def update_cluster(module: AnsibleAWSModule, client: Any, cluster: dict[str, Any], change: dict[str, Any]) -> None:
    """Container Insights and the ECS Exec configuration in one UpdateCluster."""
    name = cluster["clusterName"]
    what = " and ".join(
        {"settings": "Container Insights", "configuration": "the ECS Exec configuration"}[key] for key in change
    )
    try:
        client.update_cluster(cluster=cluster["clusterArn"], **change, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set {what} of ECS cluster '{name}'")


def put_capacity_providers(
    module: AnsibleAWSModule, client: Any, cluster: dict[str, Any], providers: list[str], strategy: list[dict]
) -> None:
    name = cluster["clusterName"]
    try:
        client.put_cluster_capacity_providers(
            cluster=cluster["clusterArn"],
            capacityProviders=providers,
            defaultCapacityProviderStrategy=strategy,
            aws_retry=True,
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set the capacity providers of ECS cluster '{name}'")


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


def plan_update(params: dict[str, Any], cluster: dict[str, Any]) -> dict[str, Any]:
    """What differs between the existing cluster and the options given."""
    update: dict[str, Any] = {}
    insights = params["container_insights"]
    if insights is not None and insights != insights_of(cluster):
        update["settings"] = [{"name": INSIGHTS, "value": insights}]
    exec_configuration = params["execute_command_configuration"]
    if exec_configuration is not None and not covers(exec_configuration_of(cluster), exec_configuration):
        update["configuration"] = {"executeCommandConfiguration": exec_configuration}
    providers = sorted(params["capacity_providers"]) if params["capacity_providers"] is not None else None
    strategy = wanted_strategy(params)
    capacity = None
    if (providers is not None and providers != providers_of(cluster)) or (
        strategy is not None and strategy != strategy_of(cluster)
    ):
        capacity = (
            params["capacity_providers"] if providers is not None else providers_of(cluster),
            strategy if strategy is not None else strategy_of(cluster),
        )
    to_set: dict[str, Any] = {}
    to_unset: list[str] = []
    if params["tags"] is not None:
        to_set, to_unset = compare_aws_tags(tags_of(cluster), params["tags"], params["purge_tags"])
    return {"update": update, "capacity": capacity, "to_set": to_set, "to_unset": to_unset}


def predicted(cluster: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The cluster as it will be after the changes, for check mode."""
    after = copy.deepcopy(cluster)
    if "configuration" in plan["update"]:
        after["configuration"] = {**(after.get("configuration") or {}), **plan["update"]["configuration"]}
    if "settings" in plan["update"]:
        others = [s for s in after.get("settings") or [] if s.get("name") != INSIGHTS]
        after["settings"] = [*others, *plan["update"]["settings"]]
    if plan["capacity"] is not None:
        after["capacityProviders"], after["defaultCapacityProviderStrategy"] = plan["capacity"]
    tags = {key: value for key, value in tags_of(after).items() if key not in plan["to_unset"]}
    tags.update({key: str(value) for key, value in plan["to_set"].items()})
    after["tags"] = ansible_dict_to_boto3_tag_list(tags, "key", "value")
    return after


def ensure_present(module: AnsibleAWSModule, client: Any) -> tuple[bool, dict[str, Any] | None, dict[str, Any]]:
    """(changed, cluster before, cluster after) for state=present."""
    params = module.params
    if params["capacity_providers"] is None:
        cluster = describe_cluster(module, client, params["cluster"])  # existing-cluster-only use
    else:
        cluster = read_cluster(module, client, params["cluster"])
        if cluster is None or cluster.get("status") != "ACTIVE":  # missing, or deleted (INACTIVE): create
            return True, None, create_cluster(module, client, create_request(params))

    plan = plan_update(params, cluster)
    if not (plan["update"] or plan["capacity"] or plan["to_set"] or plan["to_unset"]):
        return False, cluster, cluster
    if module.check_mode:
        return True, cluster, predicted(cluster, plan)
    if plan["update"]:
        update_cluster(module, client, cluster, plan["update"])
    if plan["capacity"] is not None:
        put_capacity_providers(module, client, cluster, *plan["capacity"])
    update_tags(module, client, cluster, plan["to_set"], plan["to_unset"])
    return True, cluster, describe_cluster(module, client, cluster["clusterArn"])


def ensure_absent(module: AnsibleAWSModule, client: Any) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None]:
    """(changed, cluster before, cluster after) for state=absent: an INACTIVE cluster is gone already."""
    name = module.params["cluster"]
    cluster = read_cluster(module, client, name)
    if cluster is None or cluster.get("status") == "INACTIVE":
        return False, None, None
    if module.check_mode:
        return True, cluster, {**cluster, "status": "INACTIVE"}
    try:
        deleted = client.delete_cluster(cluster=cluster["clusterArn"], aws_retry=True)["cluster"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to delete ECS cluster '{name}'")
    return True, cluster, deleted


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_input(module)
    client = module.client("ecs", retry_decorator=jittered_backoff())

    if module.params["state"] == "absent":
        changed, before, after = ensure_absent(module, client)
    else:
        changed, before, after = ensure_present(module, client)

    result: dict[str, Any] = dict(changed=changed, cluster=cluster_summary(after))
    if module._diff:
        result["diff"] = {"before": diff_view(before), "after": diff_view(after)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
