#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_service_autoscaling
short_description: Make an ECS service's desired count follow a CloudWatch metric (Application Auto Scaling)
description:
  - Manages the three pieces that let a CloudWatch metric set the desired count of an ECS service, as
    one unit - the Application Auto Scaling scalable target (minimum and maximum), a step scaling
    policy and the CloudWatch alarm that invokes it.
  - The metric must hold the number of tasks the service should run (for example
    C(ceil(queued and running work / slots per task)), published by the application). The policy uses
    C(ExactCapacity) steps, one per count from I(min_capacity) to I(max_capacity), so the service is set
    to the metric's value, clamped to the bounds; a minimum of C(0) is allowed.
  - The alarm (C(metric >= 0)) is in C(ALARM) whenever the metric has data. CloudWatch invokes an
    Auto Scaling action every minute while its alarm stays in C(ALARM), so the count keeps following
    the metric. Without data (the publisher stopped) the alarm goes to C(OK) and the count stays.
  - M(community.aws.application_autoscaling_policy) calls the API in check mode, does not update the
    scalable target unless told to, cannot remove it and does not manage the alarm; hence this module.
  - Only what differs is changed. Supports check mode and diff mode.
  - With I(state=absent) the alarm, the policy and the scalable target are deleted (each if present).
author:
  - airflow-ecs project
options:
  cluster:
    description: Name of the ECS cluster.
    type: str
    required: true
  service:
    description: Name of the ECS service. It must exist for I(state=present).
    type: str
    required: true
  min_capacity:
    description: Fewest tasks the policy may set (0 or more). Required with I(state=present).
    type: int
  max_capacity:
    description:
      - Most tasks the policy may set; at least I(min_capacity) and at most I(min_capacity) + 19
        (a step policy holds at most 20 steps). Required with I(state=present).
    type: int
  metric_namespace:
    description: CloudWatch namespace of the metric. Required with I(state=present).
    type: str
  metric_name:
    description: Name of the metric; its value is the desired count. Required with I(state=present).
    type: str
  metric_dimensions:
    description: Dimensions of the metric, as a dict.
    type: dict
    default: {}
  period:
    description: Seconds per alarm evaluation (the metric's publishing interval); 10, 30 or a multiple of 60.
    type: int
    default: 60
  cooldown:
    description: Seconds after a scaling activity before the policy may act again.
    type: int
    default: 60
  name:
    description: Name of the scaling policy and of the alarm. Defaults to C(<cluster>-<service>-demand).
    type: str
  tags:
    description: Tags of the alarm (the scalable target and the policy have none in this module).
    type: dict
    aliases: ['resource_tags']
  state:
    description: Whether the autoscaling should exist.
    type: str
    choices: ['present', 'absent']
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - The moto emulator does not delete a target's policies when the target is deregistered (AWS does);
    the module deletes the alarm and the policy itself before the target.
seealso:
  - module: community.aws.application_autoscaling_policy
  - module: amazon.aws.cloudwatch_metric_alarm
"""

EXAMPLES = r"""
- name: Run 0 to 10 workers, as many as the DesiredWorkers metric says
  ecs_service_autoscaling:
    cluster: airflow
    service: airflow-worker
    min_capacity: 0
    max_capacity: 10
    metric_namespace: airflow-ecs/airflow
    metric_name: DesiredWorkers
    cooldown: 60
    tags:
      airflow-ecs:stack: airflow
  register: worker_scaling

- name: Show the policy the alarm invokes
  ansible.builtin.debug:
    var: worker_scaling.policy.policy_arn

- name: Stop autoscaling the workers (the desired count stays where it is)
  ecs_service_autoscaling:
    cluster: airflow
    service: airflow-worker
    state: absent
"""

RETURN = r"""
scalable_target:
  description: The scalable target as Application Auto Scaling describes it (snake_case); C({}) when absent.
  returned: always
  type: dict
  sample: {"resource_id": "service/airflow/airflow-worker", "min_capacity": 0, "max_capacity": 10}
policy:
  description:
    - The step scaling policy (snake_case); C({}) when absent. In check mode, a policy that does not
      exist yet has no C(policy_arn).
  returned: always
  type: dict
  sample:
    policy_name: airflow-airflow-worker-demand
    policy_arn: arn:aws:autoscaling:us-east-1:123456789012:scalingPolicy:...:policyName/airflow-airflow-worker-demand
    step_scaling_policy_configuration:
      adjustment_type: ExactCapacity
      cooldown: 60
      metric_aggregation_type: Maximum
      step_adjustments:
        - {"metric_interval_lower_bound": 0.0, "metric_interval_upper_bound": 1.0, "scaling_adjustment": 0}
alarm:
  description: The CloudWatch alarm (snake_case) with its C(tags) as a dict; C({}) when absent.
  returned: always
  type: dict
  sample: {"alarm_name": "airflow-airflow-worker-demand", "metric_name": "DesiredWorkers", "threshold": 0.0}
diff:
  description: Bounds, cooldown, metric and alarm actions before and after.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The autoscaling before the change (C({}) when there was none).
      type: dict
    after:
      description: The autoscaling after the change (C({}) when removed).
      type: dict
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code, normalize_boto3_result
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

NAMESPACE = "ecs"
DIMENSION = "ecs:service:DesiredCount"
MAX_STEPS = 20


def argument_spec() -> dict[str, Any]:
    return dict(
        cluster=dict(type="str", required=True),
        service=dict(type="str", required=True),
        min_capacity=dict(type="int"),
        max_capacity=dict(type="int"),
        metric_namespace=dict(type="str"),
        metric_name=dict(type="str"),
        metric_dimensions=dict(type="dict", default={}),
        period=dict(type="int", default=60),
        cooldown=dict(type="int", default=60),
        name=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def step_adjustments(min_capacity: int, max_capacity: int) -> list[dict[str, Any]]:
    """ExactCapacity steps over a metric that holds the desired count (alarm threshold 0).

    Below min+1 → min; [k, k+1) → k for every k in between; max and above → max.
    """
    if max_capacity == min_capacity:
        return [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": min_capacity}]
    first = {"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": float(min_capacity + 1)}
    steps = [{**first, "ScalingAdjustment": min_capacity}]
    steps += [
        {"MetricIntervalLowerBound": float(k), "MetricIntervalUpperBound": float(k + 1), "ScalingAdjustment": k}
        for k in range(min_capacity + 1, max_capacity)
    ]
    steps.append({"MetricIntervalLowerBound": float(max_capacity), "ScalingAdjustment": max_capacity})
    return steps


def policy_configuration(min_capacity: int, max_capacity: int, cooldown: int) -> dict[str, Any]:
    return {
        "AdjustmentType": "ExactCapacity",
        "StepAdjustments": step_adjustments(min_capacity, max_capacity),
        "Cooldown": cooldown,
        "MetricAggregationType": "Maximum",
    }


def comparable_policy(configuration: dict[str, Any] | None) -> dict[str, Any]:
    """A step policy configuration with numbers normalised (the API answers floats and omits open bounds)."""
    configuration = configuration or {}
    steps = []
    for step in configuration.get("StepAdjustments") or []:
        steps.append(
            {
                key: float(step[key]) if "Bound" in key else int(step[key])
                for key in ("MetricIntervalLowerBound", "MetricIntervalUpperBound", "ScalingAdjustment")
                if step.get(key) is not None
            }
        )
    return {
        "AdjustmentType": configuration.get("AdjustmentType"),
        "StepAdjustments": sorted(steps, key=lambda s: s.get("MetricIntervalLowerBound", float("-inf"))),
        "Cooldown": int(configuration.get("Cooldown") or 0),
        "MetricAggregationType": configuration.get("MetricAggregationType"),
    }


def desired_alarm(params: dict[str, Any], name: str, policy_arn: str | None) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmDescription": (
            f"Sets the desired count of ECS service {params['service']} to {params['metric_name']} "
            f"({params['min_capacity']}-{params['max_capacity']})"
        ),
        "Namespace": params["metric_namespace"],
        "MetricName": params["metric_name"],
        "Dimensions": [{"Name": k, "Value": str(v)} for k, v in sorted(params["metric_dimensions"].items())],
        "Statistic": "Maximum",
        "Period": params["period"],
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [policy_arn] if policy_arn else [],
        "ActionsEnabled": True,
    }


def alarm_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    for key, value in desired.items():
        have, wanted = current.get(key), value
        if key == "Dimensions":
            have = sorted(have or [], key=lambda d: d["Name"])
        elif key == "Threshold":
            have = float(have) if have is not None else None
        elif key == "AlarmActions":
            have, wanted = sorted(have or []), sorted(wanted)
        if have != wanted:
            return True
    return False


class Autoscaling:
    """Reads and writes the scalable target, policy and alarm of one ECS service."""

    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        params = module.params
        self.resource_id = f"service/{params['cluster']}/{params['service']}"
        self.name = params["name"] or f"{params['cluster']}-{params['service']}-demand"
        retry = jittered_backoff()
        self.scaling = module.client("application-autoscaling", retry_decorator=retry)
        self.cloudwatch = module.client("cloudwatch", retry_decorator=retry)

    def _fail(self, error: Exception, action: str) -> None:
        self.module.fail_json_aws(error, msg=f"Failed to {action} for ECS service {self.resource_id}")

    def target(self) -> dict[str, Any]:
        try:
            found = self.scaling.describe_scalable_targets(
                ServiceNamespace=NAMESPACE, ResourceIds=[self.resource_id], ScalableDimension=DIMENSION, aws_retry=True
            )["ScalableTargets"]
        except (BotoCoreError, ClientError) as e:
            self._fail(e, "describe the scalable target")
        return next((t for t in found if t["ResourceId"] == self.resource_id), {})

    def policy(self) -> dict[str, Any]:
        try:
            found = self.scaling.describe_scaling_policies(
                ServiceNamespace=NAMESPACE,
                ResourceId=self.resource_id,
                ScalableDimension=DIMENSION,
                PolicyNames=[self.name],
                aws_retry=True,
            )["ScalingPolicies"]
        except (BotoCoreError, ClientError) as e:
            self._fail(e, "describe the scaling policy")
        return next((p for p in found if p["PolicyName"] == self.name and p["ResourceId"] == self.resource_id), {})

    def alarm(self) -> dict[str, Any]:
        try:
            found = self.cloudwatch.describe_alarms(AlarmNames=[self.name], aws_retry=True)["MetricAlarms"]
        except (BotoCoreError, ClientError) as e:
            self._fail(e, "describe the alarm")
        alarm = next((a for a in found if a["AlarmName"] == self.name), {})
        if alarm:
            alarm["Tags"] = self.alarm_tags(alarm["AlarmArn"])
        return alarm

    def alarm_tags(self, arn: str) -> dict[str, str]:
        try:
            tags = self.cloudwatch.list_tags_for_resource(ResourceARN=arn, aws_retry=True).get("Tags", [])
        except (BotoCoreError, ClientError) as e:
            self._fail(e, "read the alarm's tags")
        return boto3_tag_list_to_ansible_dict(tags)

    def register_target(self, min_capacity: int, max_capacity: int) -> None:
        try:
            self.scaling.register_scalable_target(
                ServiceNamespace=NAMESPACE,
                ResourceId=self.resource_id,
                ScalableDimension=DIMENSION,
                MinCapacity=min_capacity,
                MaxCapacity=max_capacity,
                aws_retry=True,
            )
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"register the scalable target ({min_capacity}-{max_capacity} tasks)")

    def put_policy(self, configuration: dict[str, Any]) -> None:
        try:
            self.scaling.put_scaling_policy(
                PolicyName=self.name,
                ServiceNamespace=NAMESPACE,
                ResourceId=self.resource_id,
                ScalableDimension=DIMENSION,
                PolicyType="StepScaling",
                StepScalingPolicyConfiguration=configuration,
                aws_retry=True,
            )
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"put the step scaling policy {self.name}")

    def put_alarm(self, alarm: dict[str, Any], tags: dict[str, str] | None) -> None:
        extra = {"Tags": ansible_dict_to_boto3_tag_list(tags)} if tags else {}
        try:
            self.cloudwatch.put_metric_alarm(**alarm, **extra, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"put the alarm {self.name}")

    def retag_alarm(self, arn: str, to_set: dict[str, str], to_unset: list[str]) -> None:
        try:
            if to_unset:
                self.cloudwatch.untag_resource(ResourceARN=arn, TagKeys=to_unset, aws_retry=True)
            if to_set:
                tags = ansible_dict_to_boto3_tag_list(to_set)
                self.cloudwatch.tag_resource(ResourceARN=arn, Tags=tags, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            self._fail(e, f"tag the alarm {self.name}")

    def delete(self, target: dict[str, Any], policy: dict[str, Any], alarm: dict[str, Any]) -> None:
        try:
            if alarm:
                self.cloudwatch.delete_alarms(AlarmNames=[self.name], aws_retry=True)
            if policy:
                self.scaling.delete_scaling_policy(
                    PolicyName=self.name,
                    ServiceNamespace=NAMESPACE,
                    ResourceId=self.resource_id,
                    ScalableDimension=DIMENSION,
                    aws_retry=True,
                )
            if target:
                self.scaling.deregister_scalable_target(
                    ServiceNamespace=NAMESPACE, ResourceId=self.resource_id, ScalableDimension=DIMENSION, aws_retry=True
                )
        except is_boto3_error_code("ObjectNotFoundException"):
            pass
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self._fail(e, "delete the autoscaling")


def summary(target: dict[str, Any], policy: dict[str, Any], alarm: dict[str, Any]) -> dict[str, Any]:
    """What diff mode shows: bounds, cooldown, metric and the alarm's actions."""
    if not (target or policy or alarm):
        return {}
    configuration = policy.get("StepScalingPolicyConfiguration") or {}
    return {
        "min_capacity": target.get("MinCapacity"),
        "max_capacity": target.get("MaxCapacity"),
        "cooldown": configuration.get("Cooldown"),
        "steps": len(configuration.get("StepAdjustments") or []),
        "metric": f"{alarm.get('Namespace')}/{alarm.get('MetricName')}" if alarm else None,
        "alarm_actions": alarm.get("AlarmActions", []) if alarm else [],
    }


def snake(resource: dict[str, Any]) -> dict[str, Any]:
    resource = normalize_boto3_result(resource)
    result = camel_dict_to_snake_dict(resource, ignore_list=["Tags"])
    if "Tags" in resource:
        result["tags"] = result.pop("Tags", resource["Tags"])
    return result


def check_params(module: AnsibleAWSModule) -> None:
    params = module.params
    missing = [k for k in ("min_capacity", "max_capacity", "metric_namespace", "metric_name") if params[k] is None]
    if missing:
        module.fail_json(msg=f"state is present but {', '.join(missing)} missing")
    low, high = params["min_capacity"], params["max_capacity"]
    if low < 0 or high < low or high - low + 1 > MAX_STEPS:
        module.fail_json(
            msg=f"min_capacity must be >= 0 and max_capacity from min_capacity to min_capacity + {MAX_STEPS - 1} "
            f"(got {low} and {high})"
        )
    if params["period"] not in (10, 30) and (params["period"] < 60 or params["period"] % 60):
        module.fail_json(msg=f"period must be 10, 30 or a multiple of 60 (got {params['period']})")


def ensure_present(module: AnsibleAWSModule, scaling: Autoscaling) -> tuple[bool, dict, dict, dict, dict, dict, dict]:
    params = module.params
    target, policy, alarm = scaling.target(), scaling.policy(), scaling.alarm()
    low, high = params["min_capacity"], params["max_capacity"]
    configuration = policy_configuration(low, high, params["cooldown"])

    target_changed = not target or (target.get("MinCapacity"), target.get("MaxCapacity")) != (low, high)
    policy_changed = not policy or comparable_policy(policy.get("StepScalingPolicyConfiguration")) != comparable_policy(
        configuration
    )
    if not module.check_mode:
        if target_changed:
            scaling.register_target(low, high)
        if policy_changed:
            scaling.put_policy(configuration)
    new_target = scaling.target() if target_changed and not module.check_mode else dict(target)
    new_policy = scaling.policy() if policy_changed and not module.check_mode else dict(policy)
    if module.check_mode:
        new_target.update({"ResourceId": scaling.resource_id, "MinCapacity": low, "MaxCapacity": high})
        new_policy.update({"PolicyName": scaling.name, "StepScalingPolicyConfiguration": configuration})

    desired = desired_alarm(params, scaling.name, new_policy.get("PolicyARN"))
    alarm_changed = not alarm or alarm_differs(alarm, desired)
    to_set, to_unset = ({}, [])
    if alarm and params["tags"] is not None:
        to_set, to_unset = compare_aws_tags(alarm.get("Tags", {}), params["tags"], purge_tags=True)
    if not module.check_mode:
        if alarm_changed:
            scaling.put_alarm(desired, params["tags"] if not alarm else None)
        if alarm and (to_set or to_unset):
            scaling.retag_alarm(alarm["AlarmArn"], to_set, to_unset)
    if module.check_mode or not (alarm_changed or to_set or to_unset):
        new_alarm = {**alarm, **desired} if alarm_changed else dict(alarm)
        if params["tags"] is not None:
            new_alarm["Tags"] = params["tags"]
    else:
        new_alarm = scaling.alarm()
    changed = bool(target_changed or policy_changed or alarm_changed or to_set or to_unset)
    return changed, target, policy, alarm, new_target, new_policy, new_alarm


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    scaling = Autoscaling(module)

    if module.params["state"] == "present":
        check_params(module)
        changed, target, policy, alarm, new_target, new_policy, new_alarm = ensure_present(module, scaling)
    else:
        target = scaling.target()
        # A scaling policy lives and dies with its scalable target (DeregisterScalableTarget deletes it).
        policy = scaling.policy() if target else {}
        alarm = scaling.alarm()
        changed = bool(target or policy or alarm)
        if changed and not module.check_mode:
            scaling.delete(target, policy, alarm)
        new_target, new_policy, new_alarm = {}, {}, {}

    result: dict[str, Any] = dict(
        changed=changed, scalable_target=snake(new_target), policy=snake(new_policy), alarm=snake(new_alarm)
    )
    if module._diff:
        result["diff"] = {"before": summary(target, policy, alarm), "after": summary(new_target, new_policy, new_alarm)}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
