#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several CloudWatch metric alarms in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatch_metric_alarms
short_description: Manage several CloudWatch metric alarms in one run
description:
  - Creates, updates or deletes a list of CloudWatch metric alarms (one metric and a static threshold each)
    in one module run, instead of one M(amazon.aws.cloudwatch_metric_alarm) run per alarm.
  - Every alarm the run names (O(alarms) and O(absent)) is read with one C(DescribeAlarms) call (C(AlarmNames),
    followed page by page when CloudWatch pages the answer). When nothing differs that is the only API call.
  - Each alarm is compared field by field with what CloudWatch returns. Read-only fields (state, ARN,
    timestamps) do not count, nor does the order of actions and dimensions; a field left out is equal to the
    value CloudWatch gives it then (no description, no actions, no dimensions, C(ActionsEnabled=true),
    C(TreatMissingData=missing), C(DatapointsToAlarm) equal to C(EvaluationPeriods)).
  - Only missing alarms and alarms that differ are written, each with one C(PutMetricAlarm) holding its whole
    configuration (what a spec leaves out goes back to CloudWatch's default). New alarms get their
    O(alarms[].tags) with C(PutMetricAlarm). When new alarms were made, one more C(DescribeAlarms) reads their ARNs.
  - The tags of an existing alarm are read (C(ListTagsForResource)) and changed (C(TagResource),
    C(UntagResource)) only for an alarm whose O(alarms[].tags) is given; the others' tags are left alone and
    cost no call.
  - Alarms are deleted only by name, with one C(DeleteAlarms) call. Those of O(absent) are deleted with either
    state, and with O(state=absent) those of O(alarms) as well. An alarm the run does not name is never
    touched, whatever its name starts with. Names that do not exist are fine.
  - Input is checked before any AWS call; every problem is reported in one message that names the alarm and
    the field.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(alarms), RV(changed_alarms) and the
    diff show what the run would do.
author:
  - airflow-ecs project
options:
  alarms:
    description:
      - The alarms, each as the options of M(amazon.aws.cloudwatch_metric_alarm) (snake_case) for one metric
        and a static threshold.
      - With O(state=absent) only O(alarms[].name) is read.
      - At most 100 names in O(alarms) and O(absent) together, each once.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the alarm (C(AlarmName)), 1 to 255 characters without control characters. It identifies
            the alarm.
        type: str
        required: true
      description:
        description:
          - C(AlarmDescription), up to 1024 characters.
        type: str
      namespace:
        description:
          - Namespace of the metric. Required with O(state=present).
        type: str
      metric_name:
        description:
          - Name of the metric. Required with O(state=present).
        type: str
        aliases: ['metric']
      dimensions:
        description:
          - Dimensions of the metric, as a dict (name -> value). Values are sent as strings.
        type: dict
      statistic:
        description:
          - Statistic of the metric. Exactly one of O(alarms[].statistic) and O(alarms[].extended_statistic) is
            required with O(state=present).
        type: str
        choices: [SampleCount, Average, Sum, Minimum, Maximum]
      extended_statistic:
        description:
          - A percentile or other extended statistic, for example V(p99).
        type: str
      comparison:
        description:
          - How the statistic is compared with O(alarms[].threshold). Required with O(state=present).
        type: str
        choices: [GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold]
      threshold:
        description:
          - The threshold. Required with O(state=present).
        type: float
      period:
        description:
          - Seconds per evaluated period, V(10), V(30) or a multiple of 60. Required with O(state=present).
        type: int
      evaluation_periods:
        description:
          - Number of periods evaluated, at least 1. Required with O(state=present).
        type: int
      datapoints_to_alarm:
        description:
          - Breaching periods among O(alarms[].evaluation_periods) that fire the alarm, 1 to
            O(alarms[].evaluation_periods). Left out, all of them.
        type: int
      unit:
        description:
          - Unit of the metric (C(Unit)); left out, any unit.
        type: str
        choices: [Seconds, Microseconds, Milliseconds, Bytes, Kilobytes, Megabytes, Gigabytes, Terabytes, Bits,
                  Kilobits, Megabits, Gigabits, Terabits, Percent, Count, Bytes/Second, Kilobytes/Second,
                  Megabytes/Second, Gigabytes/Second, Terabytes/Second, Bits/Second, Kilobits/Second,
                  Megabits/Second, Gigabits/Second, Terabits/Second, Count/Second, None]
      treat_missing_data:
        description:
          - How periods without data count. Left out, CloudWatch's default V(missing).
        type: str
        choices: [breaching, notBreaching, ignore, missing]
      evaluate_low_sample_count_percentile:
        description:
          - For percentile statistics only (C(EvaluateLowSampleCountPercentile)).
        type: str
        choices: [evaluate, ignore]
      actions_enabled:
        description:
          - Whether the actions run on a state change. Left out, V(true).
        type: bool
      alarm_actions:
        description:
          - ARNs notified or invoked when the alarm fires (C(ALARM)).
        type: list
        elements: str
      ok_actions:
        description:
          - ARNs notified or invoked when the alarm clears (C(OK)).
        type: list
        elements: str
      insufficient_data_actions:
        description:
          - ARNs notified or invoked on C(INSUFFICIENT_DATA).
        type: list
        elements: str
      tags:
        description:
          - Tags of the alarm, as a dict; values are sent as strings. Given to C(PutMetricAlarm) when the alarm
            is created, synced on an existing alarm.
          - Left out, the tags of an existing alarm are left as they are (and not read).
        type: dict
  absent:
    description:
      - Names of alarms to delete where they exist, with either state (alarms no longer wanted, renamed ones).
      - A name may not be in O(alarms) too.
    type: list
    elements: str
    default: []
  purge_tags:
    description:
      - Remove the tags of an alarm that are not in its O(alarms[].tags). Tags whose key starts with C(aws:) are
        never removed.
      - Has no effect on an alarm whose O(alarms[].tags) is not given.
    type: bool
    default: true
  state:
    description:
      - V(present) puts O(alarms) and deletes O(absent); V(absent) deletes both.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per run are one C(DescribeAlarms) when nothing changes; plus one C(PutMetricAlarm) per new or
    changed alarm and, when alarms were created, one more C(DescribeAlarms) for their ARNs; plus one
    C(DeleteAlarms) when alarms are deleted; plus, only for alarms with O(alarms[].tags), one
    C(ListTagsForResource) per existing alarm and a C(TagResource) or C(UntagResource) where the tags differ.
  - Metric math alarms (C(Metrics)), anomaly detection thresholds and composite alarms are not managed.
  - The alarms are put one after the other, not in parallel; C(PutMetricAlarm) has a low request quota.
  - Calls and time against a loop of M(amazon.aws.cloudwatch_metric_alarm) are in library/README.md.
seealso:
  - module: amazon.aws.cloudwatch_metric_alarm
  - name: PutMetricAlarm
    description: The fields of a metric alarm.
    link: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html
"""

EXAMPLES = r"""
- name: Create two alarms that notify a topic when they fire and when they clear
  cloudwatch_metric_alarms:
    alarms:
      - name: airflow-scheduler-heartbeat
        description: No scheduler heartbeat for 5 minutes
        namespace: airflow-ecs/airflow
        metric: scheduler_heartbeat
        statistic: Sum
        comparison: LessThanThreshold
        threshold: 1
        period: 300
        evaluation_periods: 1
        treat_missing_data: breaching
        alarm_actions: [arn:aws:sns:us-east-1:123456789012:airflow-alarms]
        ok_actions: [arn:aws:sns:us-east-1:123456789012:airflow-alarms]
      - name: airflow-database-cpu
        namespace: AWS/RDS
        metric: CPUUtilization
        dimensions: {DBInstanceIdentifier: airflow}
        statistic: Average
        comparison: GreaterThanThreshold
        threshold: 80
        period: 300
        evaluation_periods: 3
        tags: {team: data}
    absent: [airflow-database-load]  # an alarm that was renamed
  register: __alarms

- name: Show the ARN of one alarm
  ansible.builtin.debug:
    msg: "{{ __alarms.alarms['airflow-database-cpu'] }}"

- name: Delete alarms by name (missing ones are fine; no other alarm is touched)
  cloudwatch_metric_alarms:
    absent: [airflow-scheduler-heartbeat, airflow-database-cpu]
"""

RETURN = r"""
alarms:
  description:
    - ARN of every alarm of O(alarms), by name; V({}) with O(state=absent).
    - Null in check mode for an alarm that does not exist yet.
  returned: always
  type: dict
  sample: {"airflow-database-cpu": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:airflow-database-cpu"}
changed_alarms:
  description:
    - Names of the alarms created, updated (configuration or tags) or deleted by the run, in the order of
      O(alarms) then O(absent). In check mode, those the run would change.
  returned: always
  type: list
  elements: str
  sample: ["airflow-database-cpu"]
diff:
  description:
    - Every alarm the run names that exists before, respectively after, the run, by name, in snake_case, with
      defaults filled in (and C(tags) for alarms whose tags are managed).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The alarms before the run.
      type: dict
      sample: {"airflow-database-cpu": {"threshold": 80.0, "evaluation_periods": 3}}
    after:
      description: The alarms after the run.
      type: dict
      sample: {"airflow-database-cpu": {"threshold": 90.0, "evaluation_periods": 3}}
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

# DescribeAlarms and DeleteAlarms take at most 100 names a call: one call each for a whole run.
MAX_NAMES = 100
STATISTICS = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
COMPARISONS = [
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
UNITS = [
    *("Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes"),
    *("Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second"),
    *("Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second", "Terabytes/Second", "Bits/Second"),
    *("Kilobits/Second", "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None"),
]
# Option -> PutMetricAlarm field, in the order the diff shows them.
FIELDS = {
    "description": "AlarmDescription",
    "namespace": "Namespace",
    "metric_name": "MetricName",
    "dimensions": "Dimensions",
    "statistic": "Statistic",
    "extended_statistic": "ExtendedStatistic",
    "comparison": "ComparisonOperator",
    "threshold": "Threshold",
    "period": "Period",
    "evaluation_periods": "EvaluationPeriods",
    "datapoints_to_alarm": "DatapointsToAlarm",
    "unit": "Unit",
    "treat_missing_data": "TreatMissingData",
    "evaluate_low_sample_count_percentile": "EvaluateLowSampleCountPercentile",
    "actions_enabled": "ActionsEnabled",
    "alarm_actions": "AlarmActions",
    "ok_actions": "OKActions",
    "insufficient_data_actions": "InsufficientDataActions",
}
REQUIRED = ("namespace", "metric_name", "comparison", "threshold", "period", "evaluation_periods")
ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")


def argument_spec() -> dict[str, Any]:
    alarm = dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        namespace=dict(type="str"),
        metric_name=dict(type="str", aliases=["metric"]),
        dimensions=dict(type="dict"),
        statistic=dict(type="str", choices=STATISTICS),
        extended_statistic=dict(type="str"),
        comparison=dict(type="str", choices=COMPARISONS),
        threshold=dict(type="float"),
        period=dict(type="int"),
        evaluation_periods=dict(type="int"),
        datapoints_to_alarm=dict(type="int"),
        unit=dict(type="str", choices=UNITS),
        treat_missing_data=dict(type="str", choices=["breaching", "notBreaching", "ignore", "missing"]),
        evaluate_low_sample_count_percentile=dict(type="str", choices=["evaluate", "ignore"]),
        actions_enabled=dict(type="bool"),
        alarm_actions=dict(type="list", elements="str"),
        ok_actions=dict(type="list", elements="str"),
        insufficient_data_actions=dict(type="list", elements="str"),
        tags=dict(type="dict"),
    )
    return dict(
        alarms=dict(type="list", elements="dict", options=alarm, default=[]),
        absent=dict(type="list", elements="str", default=[]),
        purge_tags=dict(type="bool", default=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def name_problem(name: str) -> str | None:
    if not 1 <= len(name) <= 255:
        return f"name must be 1 to 255 characters, not {len(name)}"
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        return "name must not hold control characters"
    return None


def spec_problems(alarm: dict[str, Any]) -> list[str]:
    """What is wrong with one alarm of O(alarms) for state=present, one phrase per field."""
    problems = [f"{option} is required" for option in REQUIRED if alarm[option] in (None, "")]
    if (alarm["statistic"] is None) == (alarm["extended_statistic"] is None):
        problems.append("exactly one of statistic and extended_statistic is required")
    period, evaluations, datapoints = alarm["period"], alarm["evaluation_periods"], alarm["datapoints_to_alarm"]
    if period is not None and (period < 10 or (period not in (10, 30) and period % 60)):
        problems.append(f"period must be 10, 30 or a multiple of 60 seconds, not {period}")
    if evaluations is not None and evaluations < 1:
        problems.append(f"evaluation_periods must be at least 1, not {evaluations}")
    if datapoints is not None and not 1 <= datapoints <= max(evaluations or 1, 1):
        problems.append(f"datapoints_to_alarm must be 1 to evaluation_periods ({evaluations}), not {datapoints}")
    if alarm["description"] is not None and len(alarm["description"]) > 1024:
        problems.append(f"description must be at most 1024 characters, not {len(alarm['description'])}")
    for key, value in (alarm["dimensions"] or {}).items():
        if value is None or to_text(value) == "":
            problems.append(f"dimensions.{key} needs a value")
    return problems


def check_input(module: AnsibleAWSModule) -> tuple[list[dict[str, Any]], list[str]]:
    """The alarms and the names to delete; fails, before any AWS call, with every problem in one message."""
    params = module.params
    alarms, absent = params["alarms"], params["absent"]
    problems = []
    for index, alarm in enumerate(alarms):
        where = f"alarms[{index}] ({alarm['name']})"
        found = [name_problem(alarm["name"])]
        if params["state"] == "present":
            found += spec_problems(alarm)
        problems += [f"{where}: {problem}" for problem in found if problem]
    for index, name in enumerate(absent):
        if problem := name_problem(name):
            problems.append(f"absent[{index}] ({name}): {problem}")
    names = [alarm["name"] for alarm in alarms]
    for option, listed in (("alarms", names), ("absent", absent)):
        repeated = sorted({name for name in listed if listed.count(name) > 1})
        if repeated:
            problems.append(f"{option} names the same alarm twice: {', '.join(repeated)}")
    both = sorted(set(names) & set(absent))
    if both:
        problems.append(f"alarms and absent both name {', '.join(both)}")
    if len(set(names) | set(absent)) > MAX_NAMES:
        problems.append(
            f"alarms and absent name {len(set(names) | set(absent))} alarms; at most {MAX_NAMES} per run "
            "(one DescribeAlarms call): split them over several tasks"
        )
    if problems:
        module.fail_json(msg="Cannot manage the alarms: " + "; ".join(problems) + ". Nothing was changed.")
    return alarms, absent


# --- Comparing -----------------------------------------------------------------------------------


def sorted_dimensions(dimensions: list[dict[str, str]] | None) -> list[dict[str, str]]:
    return sorted(
        ({"Name": d["Name"], "Value": to_text(d["Value"])} for d in dimensions or []),
        key=lambda d: (d["Name"], d["Value"]),
    )


def normalised(config: dict[str, Any]) -> dict[str, Any]:
    """An alarm's fields (PutMetricAlarm names) with CloudWatch's defaults in place of omitted ones."""
    evaluations = config.get("EvaluationPeriods")
    threshold = config.get("Threshold")
    return {
        "AlarmDescription": config.get("AlarmDescription") or "",
        "Namespace": config.get("Namespace"),
        "MetricName": config.get("MetricName"),
        "Dimensions": sorted_dimensions(config.get("Dimensions")),
        "Statistic": config.get("Statistic"),
        "ExtendedStatistic": config.get("ExtendedStatistic"),
        "ComparisonOperator": config.get("ComparisonOperator"),
        "Threshold": float(threshold) if threshold is not None else None,
        "Period": config.get("Period"),
        "EvaluationPeriods": evaluations,
        "DatapointsToAlarm": config.get("DatapointsToAlarm") or evaluations,
        "Unit": config.get("Unit"),
        "TreatMissingData": config.get("TreatMissingData") or "missing",
        "EvaluateLowSampleCountPercentile": config.get("EvaluateLowSampleCountPercentile") or "",
        "ActionsEnabled": config.get("ActionsEnabled", True) is not False,
        **{key: sorted(config.get(key) or []) for key in ACTIONS},
    }


def put_params(alarm: dict[str, Any]) -> dict[str, Any]:
    """PutMetricAlarm's parameters for one alarm of O(alarms): the fields given, nothing else."""
    params: dict[str, Any] = {"AlarmName": alarm["name"]}
    for option, key in FIELDS.items():
        value = alarm[option]
        if value is None:
            continue
        if option == "dimensions":
            value = [{"Name": to_text(k), "Value": to_text(v)} for k, v in sorted(value.items())]
        params[key] = value
    return params


def wanted_tags(alarm: dict[str, Any]) -> dict[str, str] | None:
    tags = alarm["tags"]
    return None if tags is None else {to_text(key): to_text(value) for key, value in tags.items()}


def view(config: dict[str, Any], tags: dict[str, str] | None) -> dict[str, Any]:
    """What the diff shows of one alarm: its normalised fields in snake_case, dimensions as a dict."""
    fields = normalised(config)
    shown = {option: fields[key] for option, key in FIELDS.items()}
    shown["dimensions"] = {d["Name"]: d["Value"] for d in fields["Dimensions"]}
    if tags is not None:
        shown["tags"] = tags
    return shown


# --- Reading and writing -------------------------------------------------------------------------


def describe_alarms(module: AnsibleAWSModule, client: Any, names: list[str]) -> dict[str, dict]:
    """The metric alarms among `names`, by name: one DescribeAlarms call (more only if CloudWatch pages)."""
    found: dict[str, dict] = {}
    for start in range(0, len(names), MAX_NAMES):
        request = {"AlarmNames": names[start : start + MAX_NAMES], "MaxRecords": MAX_NAMES}
        while True:
            try:
                page = client.describe_alarms(**request, aws_retry=True)
            except (BotoCoreError, ClientError) as e:
                module.fail_json_aws(e, msg=f"Failed to describe the CloudWatch alarms {', '.join(names)}")
            found.update({alarm["AlarmName"]: alarm for alarm in page.get("MetricAlarms", [])})
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    return {name: alarm for name, alarm in found.items() if name in names}


def get_tags(module: AnsibleAWSModule, client: Any, alarm: dict) -> dict[str, str]:
    try:
        tags = client.list_tags_for_resource(ResourceARN=alarm["AlarmArn"], aws_retry=True).get("Tags", [])
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the tags of CloudWatch alarm '{alarm['AlarmName']}'")
    return boto3_tag_list_to_ansible_dict(tags)


def put_alarm(module: AnsibleAWSModule, client: Any, params: dict[str, Any], tags: dict[str, str] | None) -> None:
    extra = {"Tags": ansible_dict_to_boto3_tag_list(tags)} if tags else {}
    try:
        client.put_metric_alarm(**params, **extra, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to put CloudWatch alarm '{params['AlarmName']}'")


def retag(module: AnsibleAWSModule, client: Any, plan: dict[str, Any], arn: str) -> None:
    """Set and unset the tags of an existing alarm as planned (plan_alarm)."""
    try:
        if plan["to_unset"]:
            client.untag_resource(ResourceARN=arn, TagKeys=plan["to_unset"], aws_retry=True)
        if plan["to_set"]:
            tags = ansible_dict_to_boto3_tag_list(plan["to_set"])
            client.tag_resource(ResourceARN=arn, Tags=tags, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update the tags of CloudWatch alarm '{plan['name']}'")


def delete_alarms(module: AnsibleAWSModule, client: Any, names: list[str]) -> None:
    """Delete existing alarms by name. DeleteAlarms deletes none when one is missing: read and try once more."""
    try:
        client.delete_alarms(AlarmNames=names, aws_retry=True)
    except is_boto3_error_code("ResourceNotFound"):
        still = list(describe_alarms(module, client, names))  # one was deleted meanwhile
        if still:
            try:
                client.delete_alarms(AlarmNames=still, aws_retry=True)
            except (BotoCoreError, ClientError) as e:
                module.fail_json_aws(e, msg=f"Failed to delete the CloudWatch alarms {', '.join(still)}")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete the CloudWatch alarms {', '.join(names)}")


# --- The run -------------------------------------------------------------------------------------


def plan_alarm(module: AnsibleAWSModule, client: Any, alarm: dict, current: dict | None) -> dict[str, Any]:
    """What to do for one alarm of O(alarms): put it or not, tags to set and unset, its view before and after."""
    params = put_params(alarm)
    desired_tags = wanted_tags(alarm)
    tags_before = get_tags(module, client, current) if current and desired_tags is not None else None
    to_set, to_unset = {}, []
    if current and desired_tags is not None:
        to_set, to_unset = compare_aws_tags(tags_before, desired_tags, module.params["purge_tags"])
    tags_after = None
    if desired_tags is not None:
        kept = {key: value for key, value in (tags_before or {}).items() if key not in to_unset}
        tags_after = kept | (to_set if current else desired_tags)
    return {
        "name": alarm["name"],
        "params": params,
        "tags": desired_tags,
        "put": current is None or normalised(current) != normalised(params),
        "create": current is None,
        "to_set": to_set,
        "to_unset": to_unset,
        "before": view(current, tags_before) if current else None,
        "after": view(params, tags_after),
    }


def run(module: AnsibleAWSModule, client: Any, alarms: list[dict], absent: list[str]) -> dict[str, Any]:
    present = module.params["state"] == "present"
    to_delete = absent if present else [alarm["name"] for alarm in alarms] + absent
    found = describe_alarms(module, client, [alarm["name"] for alarm in alarms] + absent)

    plans = [plan_alarm(module, client, alarm, found.get(alarm["name"])) for alarm in alarms] if present else []
    doomed = [name for name in to_delete if name in found]
    changed_alarms = [p["name"] for p in plans if p["put"] or p["to_set"] or p["to_unset"]] + doomed

    if not module.check_mode:
        for plan in plans:
            if plan["put"]:
                put_alarm(module, client, plan["params"], plan["tags"] if plan["create"] else None)
            if plan["to_set"] or plan["to_unset"]:
                retag(module, client, plan, found[plan["name"]]["AlarmArn"])
        if doomed:
            delete_alarms(module, client, doomed)

    arns = {name: alarm["AlarmArn"] for name, alarm in found.items()}
    created = [p["name"] for p in plans if p["create"]]
    if created and not module.check_mode:  # PutMetricAlarm returns no ARN: read the new alarms'
        arns.update({name: alarm["AlarmArn"] for name, alarm in describe_alarms(module, client, created).items()})

    before = {p["name"]: p["before"] for p in plans if p["before"]}
    before.update({name: view(found[name], None) for name in doomed})
    return {
        "changed": bool(changed_alarms),
        "alarms": {p["name"]: arns.get(p["name"]) for p in plans},
        "changed_alarms": changed_alarms,
        "diff": {"before": before, "after": {p["name"]: p["after"] for p in plans}},
    }


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    # Refuse bad input before any AWS call.
    alarms, absent = check_input(module)

    if not alarms and not absent:
        module.exit_json(changed=False, alarms={}, changed_alarms=[])
    client = module.client("cloudwatch", retry_decorator=jittered_backoff())
    result = run(module, client, alarms, absent)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
