#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage an Application Load Balancer with its target groups and listeners in one run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: elbv2_application_lb
short_description: Manage an Application Load Balancer, its target groups and its listeners in one run
description:
  - Creates, updates or deletes one Application Load Balancer (ALB) together with the target groups its
    listeners forward to and its listeners, in one module run instead of one
    M(community.aws.elb_target_group) run per target group and one M(amazon.aws.elb_application_lb) run.
  - The run reads everything first, with one call per kind of thing (C(DescribeLoadBalancers),
    C(DescribeTargetGroups) for all the target groups by name, C(DescribeLoadBalancerAttributes),
    C(DescribeTargetGroupAttributes) per existing target group, C(DescribeListeners), and one
    C(DescribeTags) for the ALB, the target groups and the listeners together, up to 20 of them a call).
    A read is skipped when the run manages nothing it would tell (no attribute given, no tags given,
    O(listeners) not given). When nothing differs those reads are the whole run.
  - Then it plans every change and refuses, before the first write, what AWS cannot change in place
    (the scheme of an existing ALB; the protocol, port, VPC or target type of an existing target group;
    another type of load balancer with the name). It never deletes a live ALB or target group to apply a
    change.
  - Then it writes only what differs, in this order. Target groups first (C(CreateTargetGroup) with
    their health check and tags, C(ModifyTargetGroup) for a changed health check,
    C(ModifyTargetGroupAttributes) for the deregistration delay). Then the ALB (C(CreateLoadBalancer)
    with its tags, C(SetSubnets), C(SetSecurityGroups), C(ModifyLoadBalancerAttributes)). Then the
    listeners by port (C(DeleteListener) for a listener not given when O(purge_listeners=true),
    C(ModifyListener) for a changed one, C(CreateListener) with its tags for a missing one). Tags of
    existing resources last (C(AddTags), C(RemoveTags)).
  - Targets are never registered or deregistered; ECS registers the tasks of a service.
  - A listener has exactly one default action, V(forward) to one target group of O(target_groups),
    V(redirect) or V(fixed-response); other shapes (weighted forwards, authentication actions, several
    certificates) are refused. Its other rules are managed only when O(listeners[].rules) is given, and then
    the listener has exactly those (C(DescribeRules); C(DeleteRule) for a rule at a priority not given,
    C(ModifyRule) for a changed one, C(CreateRule) with the listener's tags for a missing one, after the
    listener itself). A rule is one C(path-pattern) condition and one action.
  - With O(state=absent) the ALB is deleted (its listeners with it), the run waits until AWS no longer
    lists it, then the target groups of O(target_groups) are deleted by name (retried while AWS still
    says they are in use, up to O(wait_timeout)). Missing ones are fine.
  - Input is checked before any AWS call; every problem is reported in one message that names the field.
  - Supports check mode and diff mode. In check mode nothing is changed; the result shows the resources
    as they would be (with the ARNs and DNS name of those that exist), RV(changes) what the run would do.
author:
  - airflow-ecs project
options:
  name:
    description:
      - Name of the ALB, 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen nor
        starting with C(internal-). It identifies the ALB.
    type: str
    required: true
  scheme:
    description:
      - V(internet-facing) or V(internal). It cannot change on an existing ALB (the run fails before any
        change).
    type: str
    choices: [internet-facing, internal]
    default: internet-facing
  subnets:
    description:
      - IDs of the ALB's subnets, at least two in different availability zones. Required with
        O(state=present); compared as a set.
    type: list
    elements: str
  security_groups:
    description:
      - IDs (C(sg-...)) of the ALB's security groups, compared as a set. Not given, those of an existing ALB
        are left alone (a new one gets the VPC's default group).
    type: list
    elements: str
  idle_timeout:
    description:
      - Seconds an idle connection is kept (C(idle_timeout.timeout_seconds)), 1 to 4000. Not given, not read
        nor changed.
    type: int
  attributes:
    description:
      - Other ALB attributes, by key (for example C(routing.http2.enabled), C(deletion_protection.enabled)).
        Values are sent as strings, booleans as V(true)/V(false). An attribute not given is not changed.
      - An attribute AWS does not report counts as different and is written.
    type: dict
    default: {}
  tags:
    description:
      - Tags of the ALB. Not given, its tags are neither read nor changed.
    type: dict
  purge_tags:
    description:
      - Remove the tags of the ALB, a target group or a listener that are not in its O(tags),
        O(target_groups[].tags) or O(listeners[].tags). Tags whose key starts with C(aws:) are never removed.
      - No effect on a resource whose tags are not given.
    type: bool
    default: true
  target_groups:
    description:
      - The target groups the listeners forward to, by name. With O(state=absent) only O(target_groups[].name)
        is read.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the target group, 1 to 32 letters, digits and hyphens, not starting or ending with a
            hyphen. It identifies the target group.
        type: str
        required: true
      protocol:
        description:
          - Protocol to the targets. Cannot change on an existing target group.
        type: str
        choices: [HTTP, HTTPS]
        default: HTTP
      port:
        description:
          - Port of the targets, 1 to 65535. Required with O(state=present). Cannot change on an existing
            target group.
        type: int
      target_type:
        description:
          - V(ip) for Fargate tasks, V(instance) for EC2 instances. Cannot change on an existing target group.
        type: str
        choices: [ip, instance]
        default: ip
      vpc_id:
        description:
          - VPC of the targets. Required with O(state=present). Cannot change on an existing target group.
        type: str
      health_check:
        description:
          - The health check. A field not given is not compared (a new target group gets AWS's default).
        type: dict
        suboptions:
          protocol:
            description: Protocol of the check.
            type: str
            choices: [HTTP, HTTPS]
          port:
            description: V(traffic-port) or a port number, 1 to 65535.
            type: str
          path:
            description: Path requested, starting with C(/), up to 1024 characters.
            type: str
          interval:
            description: Seconds between checks, 5 to 300.
            type: int
          timeout:
            description: Seconds without an answer that fail a check, 2 to 120, less than the interval.
            type: int
          healthy_threshold:
            description: Consecutive passed checks that make a target healthy, 2 to 10.
            type: int
          unhealthy_threshold:
            description: Consecutive failed checks that make a target unhealthy, 2 to 10.
            type: int
          success_codes:
            description: HTTP codes of a passed check (C(Matcher.HttpCode)), such as V(200), V(200,202) or V(200-299).
            type: str
      deregistration_delay:
        description:
          - Seconds a deregistering target keeps its in-flight requests
            (C(deregistration_delay.timeout_seconds)), 0 to 3600. Not given, not read nor changed.
        type: int
      tags:
        description:
          - Tags of the target group. Not given, its tags are neither read nor changed.
        type: dict
  listeners:
    description:
      - The ALB's listeners, by port. Not given, listeners are neither read nor changed.
      - With O(purge_listeners=true), a listener on a port not listed is deleted.
    type: list
    elements: dict
    suboptions:
      port:
        description: Port of the listener, 1 to 65535, once per ALB.
        type: int
        required: true
      protocol:
        description: Protocol of the listener.
        type: str
        choices: [HTTP, HTTPS]
        required: true
      certificate_arn:
        description: ARN of the default certificate (ACM or IAM). Required with V(HTTPS), refused with V(HTTP).
        type: str
      ssl_policy:
        description:
          - TLS policy of an V(HTTPS) listener. Not given, AWS's default at creation, and an existing listener's
            is not compared. Refused with V(HTTP).
        type: str
      default_action:
        description: What the listener does with every request.
        type: dict
        required: true
        suboptions:
          type:
            description: The kind of action.
            type: str
            choices: [forward, redirect, fixed-response]
            required: true
          target_group:
            description: With V(forward) (and only then), the name of one target group of O(target_groups).
            type: str
          redirect:
            description:
              - With V(redirect) (and only then). A field not given keeps that part of the request
                (C(#{protocol}), C(#{port}), C(#{host}), C(/#{path}), C(#{query})).
            type: dict
            suboptions:
              protocol:
                description: V(HTTP), V(HTTPS) or V(#{protocol}).
                type: str
              port:
                description: A port, 1 to 65535, or V(#{port}).
                type: str
              host:
                description: Host name, or V(#{host}).
                type: str
              path:
                description: Path starting with C(/), or V(/#{path}).
                type: str
              query:
                description: Query without the leading C(?), or V(#{query}).
                type: str
              status_code:
                description: V(HTTP_301) (permanent) or V(HTTP_302).
                type: str
                choices: [HTTP_301, HTTP_302]
                required: true
          fixed_response:
            description: With V(fixed-response) (and only then).
            type: dict
            suboptions:
              status_code:
                description: HTTP status, 2XX to 5XX.
                type: str
                required: true
              content_type:
                description: Content type of the body.
                type: str
                choices: [text/plain, text/css, text/html, application/javascript, application/json]
              message_body:
                description: Body, up to 1024 characters.
                type: str
      rules:
        description:
          - The listener's rules besides its default action, evaluated by AWS from the lowest priority up;
            the first whose path pattern matches the request's path acts, else the default action does.
          - Given (also V([])), a rule at a priority not listed is deleted. Not given, rules are neither read
            nor changed.
          - Each rule carries the listener's O(listeners[].tags) (when given).
        type: list
        elements: dict
        suboptions:
          priority:
            description: 1 to 50000, once per listener.
            type: int
            required: true
          path_patterns:
            description:
              - 1 to 5 patterns, compared case-sensitively with the path only (not the query string), with
                C(*) (0 or more characters) and C(?) (one character), at most 5 wildcards in all. Each is
                1 to 128 of the letters, digits and C(_-.$/~"'@:+&*?). Compared as a set.
              - V(/admin/*) does not match V(/admin), so give both to cover the path and what is below it.
            type: list
            elements: str
            required: true
          action:
            description: What the rule does with a matching request; the same options as O(listeners[].default_action).
            type: dict
            required: true
      tags:
        description:
          - Tags of the listener (and of its O(listeners[].rules)). Not given, its tags are neither read nor changed.
        type: dict
  purge_listeners:
    description:
      - Delete the ALB's listeners whose port is not in O(listeners). No effect when O(listeners) is not given.
    type: bool
    default: true
  wait_timeout:
    description:
      - With O(state=absent), seconds to wait for the ALB to be gone and then for each target group to be
        deletable.
    type: int
    default: 600
  state:
    description:
      - V(present) creates and updates; V(absent) deletes the ALB and the target groups of O(target_groups).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls of a run that changes nothing, with everything given (attributes, tags, listeners, a
    deregistration delay) are C(DescribeLoadBalancers), C(DescribeTargetGroups),
    C(DescribeLoadBalancerAttributes), one C(DescribeTargetGroupAttributes) per target group,
    C(DescribeListeners), one C(DescribeRules) per listener whose O(listeners[].rules) are given, and
    C(DescribeTags) (one per 20 resources).
  - Creating an ALB with one target group and one listener takes the two first reads, C(CreateTargetGroup),
    C(ModifyTargetGroupAttributes) when a deregistration delay is given, C(CreateLoadBalancer),
    C(ModifyLoadBalancerAttributes) when attributes are given, C(CreateListener). The run does not wait for
    the new ALB to be active (listeners can be added to a provisioning ALB).
  - Tags given at creation need C(elasticloadbalancing:AddTags) as well as the C(Create*) action.
  - Calls and time against the upstream modules are in library/README.md.
seealso:
  - module: amazon.aws.elb_application_lb
  - module: community.aws.elb_target_group
"""

EXAMPLES = r"""
- name: Create an internet-facing ALB forwarding HTTPS to one target group, 80 redirecting to 443
  elbv2_application_lb:
    name: airflow-alb
    scheme: internet-facing
    subnets: [subnet-0123456789abcdef0, subnet-0123456789abcdef1]
    security_groups: [sg-0123456789abcdef0]
    idle_timeout: 60
    target_groups:
      - name: airflow-api-server
        protocol: HTTP
        port: 8080
        target_type: ip
        vpc_id: vpc-0123456789abcdef0
        health_check: {path: /api/v2/monitor/health, interval: 30, timeout: 10, healthy_threshold: 2,
                       unhealthy_threshold: 3, success_codes: "200"}
        deregistration_delay: 30
        tags: {airflow-ecs:stack: airflow}
    listeners:
      - port: 80
        protocol: HTTP
        default_action:
          type: redirect
          redirect: {protocol: HTTPS, port: "443", status_code: HTTP_301}
      - port: 443
        protocol: HTTPS
        certificate_arn: arn:aws:acm:us-east-1:123456789012:certificate/0123abcd-0123-0123-0123-0123456789ab
        ssl_policy: ELBSecurityPolicy-TLS13-1-2-2021-06
        default_action: {type: forward, target_group: airflow-api-server}
        # Refused before the default action: the path itself and everything below it.
        rules:
          - priority: 1
            path_patterns: [/internal, /internal/*]
            action: {type: fixed-response, fixed_response: {status_code: "404", content_type: text/plain}}
    tags: {airflow-ecs:stack: airflow}
  register: __alb

- name: Show the DNS name and the target group's ARN
  ansible.builtin.debug:
    msg: "{{ __alb.load_balancer.dns_name }} {{ __alb.target_groups['airflow-api-server'].arn }}"

- name: Delete the ALB, wait until it is gone, then delete its target group
  elbv2_application_lb:
    name: airflow-alb
    target_groups: [{name: airflow-api-server}]
    state: absent
"""

RETURN = r"""
load_balancer:
  description:
    - The ALB after the run (in check mode, as it would be); V({}) with O(state=absent).
    - RV(load_balancer.arn), RV(load_balancer.arn_suffix) and RV(load_balancer.dns_name) are null in check
      mode for an ALB that does not exist yet.
  returned: always
  type: dict
  contains:
    arn:
      description: ARN of the ALB.
      type: str
      sample: arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/airflow-alb/0123456789abcdef
    arn_suffix:
      description: C(app/<name>/<id>), the C(LoadBalancer) dimension of its CloudWatch metrics.
      type: str
      sample: app/airflow-alb/0123456789abcdef
    dns_name:
      description: DNS name of the ALB.
      type: str
      sample: airflow-alb-1234567890.us-east-1.elb.amazonaws.com
    canonical_hosted_zone_id:
      description: Route 53 zone of the DNS name (for an alias record).
      type: str
      sample: Z35SXDOTRQ7X7K
    vpc_id:
      description: VPC of the ALB.
      type: str
      sample: vpc-0123456789abcdef0
target_groups:
  description:
    - Every target group of O(target_groups) by name (in check mode, as it would be); V({}) with O(state=absent).
  returned: always
  type: dict
  contains:
    arn:
      description: ARN of the target group; null in check mode for one that does not exist yet.
      type: str
    arn_suffix:
      description: C(targetgroup/<name>/<id>), the C(TargetGroup) dimension of its CloudWatch metrics.
      type: str
  sample:
    airflow-api-server:
      arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/airflow-api-server/0123456789abcdef
      arn_suffix: targetgroup/airflow-api-server/0123456789abcdef
listeners:
  description:
    - The listeners of O(listeners) in the order given, with C(port), C(protocol), C(arn) (null in check
      mode for one that does not exist yet) and C(rules) (C(priority) and C(arn) of each given rule, by
      priority); V([]) when O(listeners) is not given or with O(state=absent).
  returned: always
  type: list
  elements: dict
  sample:
    - port: 80
      protocol: HTTP
      arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/airflow-alb/0123456789abcdef/0123abcd
      rules: []
changes:
  description: What the run did (in check mode, would do), one sentence per write, in order.
  returned: always
  type: list
  elements: str
  sample: ["create target group airflow-api-server", "set idle_timeout.timeout_seconds to 60 on load balancer alb"]
diff:
  description:
    - The managed settings of the ALB, of each target group and of each listener (by port), before and after;
      what does not exist is absent from C(before) (C(after) for what is deleted).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: Before the run.
      type: dict
    after:
      description: After the run.
      type: dict
"""

import contextlib
import re
import time
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible.module_utils.desired_tags import desired_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)

NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?")
SUCCESS_CODES = re.compile(r"\d{3}(?:-\d{3})?(?:,\d{3}(?:-\d{3})?)*")
ATTRIBUTE_KEY = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)+")
IDLE_TIMEOUT = "idle_timeout.timeout_seconds"
DEREGISTRATION_DELAY = "deregistration_delay.timeout_seconds"
TAG_ARNS_PER_CALL = 20  # DescribeTags takes at most 20 resource ARNs
# Health check option -> DescribeTargetGroups / CreateTargetGroup field.
HEALTH_CHECK = {
    "protocol": "HealthCheckProtocol",
    "port": "HealthCheckPort",
    "path": "HealthCheckPath",
    "interval": "HealthCheckIntervalSeconds",
    "timeout": "HealthCheckTimeoutSeconds",
    "healthy_threshold": "HealthyThresholdCount",
    "unhealthy_threshold": "UnhealthyThresholdCount",
    "success_codes": "Matcher",
}
# What AWS fills in for a part of a redirect that is not given: that part of the request is kept.
REDIRECT_DEFAULTS = {
    "protocol": "#{protocol}",
    "port": "#{port}",
    "host": "#{host}",
    "path": "/#{path}",
    "query": "#{query}",
}
REDIRECT_FIELDS = {"protocol": "Protocol", "port": "Port", "host": "Host", "path": "Path", "query": "Query"}
# Listener rules (ELB quotas and CreateRule): condition values and wildcards per rule, a path pattern's characters.
RULE_CONDITION_VALUES = 5
RULE_WILDCARDS = 5
PATH_PATTERN = re.compile(r"[A-Za-z0-9_\-.$/~\"'@:+&*?]{1,128}")
# Calls right after a resource of this run was created are retried while ELB does not know it everywhere.
NEW_RESOURCE = ("TargetGroupNotFound", "LoadBalancerNotFound", "ListenerNotFound")


def argument_spec() -> dict[str, Any]:
    health_check = dict(
        protocol=dict(type="str", choices=["HTTP", "HTTPS"]),
        port=dict(type="str"),
        path=dict(type="str"),
        interval=dict(type="int"),
        timeout=dict(type="int"),
        healthy_threshold=dict(type="int"),
        unhealthy_threshold=dict(type="int"),
        success_codes=dict(type="str"),
    )
    target_group = dict(
        name=dict(type="str", required=True),
        protocol=dict(type="str", choices=["HTTP", "HTTPS"], default="HTTP"),
        port=dict(type="int"),
        target_type=dict(type="str", choices=["ip", "instance"], default="ip"),
        vpc_id=dict(type="str"),
        health_check=dict(type="dict", options=health_check),
        deregistration_delay=dict(type="int"),
        tags=dict(type="dict"),
    )
    redirect = dict(
        protocol=dict(type="str"),
        port=dict(type="str"),
        host=dict(type="str"),
        path=dict(type="str"),
        query=dict(type="str"),
        status_code=dict(type="str", choices=["HTTP_301", "HTTP_302"], required=True),
    )
    fixed_response = dict(
        status_code=dict(type="str", required=True),
        content_type=dict(
            type="str", choices=["text/plain", "text/css", "text/html", "application/javascript", "application/json"]
        ),
        message_body=dict(type="str"),
    )
    action = dict(
        type=dict(type="str", choices=["forward", "redirect", "fixed-response"], required=True),
        target_group=dict(type="str"),
        redirect=dict(type="dict", options=redirect),
        fixed_response=dict(type="dict", options=fixed_response),
    )
    rule = dict(
        priority=dict(type="int", required=True),
        path_patterns=dict(type="list", elements="str", required=True),
        action=dict(type="dict", options=action, required=True),
    )
    listener = dict(
        port=dict(type="int", required=True),
        protocol=dict(type="str", choices=["HTTP", "HTTPS"], required=True),
        certificate_arn=dict(type="str"),
        ssl_policy=dict(type="str"),
        default_action=dict(type="dict", options=action, required=True),
        rules=dict(type="list", elements="dict", options=rule),
        tags=dict(type="dict"),
    )
    return dict(
        name=dict(type="str", required=True),
        scheme=dict(type="str", choices=["internet-facing", "internal"], default="internet-facing"),
        subnets=dict(type="list", elements="str"),
        security_groups=dict(type="list", elements="str"),
        idle_timeout=dict(type="int"),
        attributes=dict(type="dict", default={}),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
        target_groups=dict(type="list", elements="dict", options=target_group, default=[]),
        listeners=dict(type="list", elements="dict", options=listener),
        purge_listeners=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- Input ---------------------------------------------------------------------------------------


def name_problem(what: str, name: str) -> str | None:
    if not NAME.fullmatch(name):
        return f"{what} {name!r} must be 1 to 32 letters, digits and hyphens, not starting or ending with a hyphen"
    if "--" in name:
        return f"{what} {name!r} must not hold two hyphens in a row"
    return None


def in_range(problems: list[str], field: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        problems.append(f"{field} must be {low} to {high}, not {value}")


def as_text(value: Any) -> str:
    """An attribute or tag value as AWS stores it: booleans as true/false, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalar_problems(field: str, values: dict | None) -> list[str]:
    return [
        f"{field}.{key} must be a string, number or boolean"
        for key, value in (values or {}).items()
        if value is None or isinstance(value, (dict, list))
    ]


def health_check_problems(field: str, check: dict[str, Any] | None) -> list[str]:
    if not check:
        return []
    problems: list[str] = []
    in_range(problems, f"{field}.interval", check["interval"], 5, 300)
    in_range(problems, f"{field}.timeout", check["timeout"], 2, 120)
    in_range(problems, f"{field}.healthy_threshold", check["healthy_threshold"], 2, 10)
    in_range(problems, f"{field}.unhealthy_threshold", check["unhealthy_threshold"], 2, 10)
    if check["interval"] is not None and check["timeout"] is not None and check["timeout"] >= check["interval"]:
        problems.append(
            f"{field}.timeout ({check['timeout']}) must be less than {field}.interval ({check['interval']})"
        )
    path = check["path"]
    if path is not None and (not path.startswith("/") or len(path) > 1024):
        problems.append(f"{field}.path must start with / and be at most 1024 characters, not {path!r}")
    port = check["port"]
    if port is not None and port != "traffic-port" and not (port.isdigit() and 1 <= int(port) <= 65535):
        problems.append(f"{field}.port must be traffic-port or a port 1 to 65535, not {port!r}")
    codes = check["success_codes"]
    if codes is not None and not SUCCESS_CODES.fullmatch(codes):
        problems.append(f"{field}.success_codes must look like 200, 200,202 or 200-299, not {codes!r}")
    return problems


def target_group_problems(index: int, group: dict[str, Any]) -> list[str]:
    field = f"target_groups[{index}]"
    problems = [f"{field}.{option} is required" for option in ("port", "vpc_id") if group[option] in (None, "")]
    in_range(problems, f"{field}.port", group["port"], 1, 65535)
    in_range(problems, f"{field}.deregistration_delay", group["deregistration_delay"], 0, 3600)
    problems += health_check_problems(f"{field}.health_check", group["health_check"])
    problems += scalar_problems(f"{field}.tags", group["tags"])
    return problems


def action_problems(field: str, action: dict[str, Any], target_groups: list[str]) -> list[str]:
    kind = action["type"]
    problems = [
        f"{field}.{option} is only for type {wanted}, not {kind}"
        for option, wanted in (
            ("target_group", "forward"),
            ("redirect", "redirect"),
            ("fixed_response", "fixed-response"),
        )
        if action[option] is not None and kind != wanted
    ]
    if kind == "forward":
        if not action["target_group"]:
            problems.append(f"{field}.target_group is required with type forward")
        elif action["target_group"] not in target_groups:
            problems.append(
                f"{field}.target_group {action['target_group']!r} is not one of target_groups "
                f"({', '.join(target_groups) or 'none given'}): a listener forwards only to a target group of this run"
            )
    if kind == "redirect":
        redirect = action["redirect"]
        if redirect is None:
            problems.append(f"{field}.redirect is required with type redirect")
        else:
            if redirect["protocol"] not in (None, "HTTP", "HTTPS", "#{protocol}"):
                problems.append(f"{field}.redirect.protocol must be HTTP, HTTPS or #{{protocol}}")
            port = redirect["port"]
            if port not in (None, "#{port}") and not (port.isdigit() and 1 <= int(port) <= 65535):
                problems.append(f"{field}.redirect.port must be a port 1 to 65535 or #{{port}}, not {port!r}")
            if redirect["path"] is not None and not redirect["path"].startswith("/"):
                problems.append(f"{field}.redirect.path must start with /")
            if redirect["query"] is not None and redirect["query"].startswith("?"):
                problems.append(f"{field}.redirect.query must not start with ?")
    if kind == "fixed-response":
        response = action["fixed_response"]
        if response is None:
            problems.append(f"{field}.fixed_response is required with type fixed-response")
        else:
            if not re.fullmatch(r"[2-5]\d\d", response["status_code"]):
                problems.append(
                    f"{field}.fixed_response.status_code must be 2XX to 5XX, not {response['status_code']!r}"
                )
            if len(response["message_body"] or "") > 1024:
                problems.append(f"{field}.fixed_response.message_body must be at most 1024 characters")
    return problems


def listener_problems(index: int, listener: dict[str, Any], target_groups: list[str]) -> list[str]:
    field = f"listeners[{index}]"
    problems: list[str] = []
    in_range(problems, f"{field}.port", listener["port"], 1, 65535)
    if listener["protocol"] == "HTTPS" and not listener["certificate_arn"]:
        problems.append(f"{field}.certificate_arn is required with protocol HTTPS")
    if listener["protocol"] == "HTTP":
        problems += [
            f"{field}.{option} is only for protocol HTTPS"
            for option in ("certificate_arn", "ssl_policy")
            if listener[option]
        ]
    problems += action_problems(f"{field}.default_action", listener["default_action"], target_groups)
    problems += scalar_problems(f"{field}.tags", listener["tags"])
    for number, rule in enumerate(listener["rules"] or []):
        problems += rule_problems(f"{field}.rules[{number}]", rule, target_groups)
    priorities = [rule["priority"] for rule in listener["rules"] or []]
    problems += [
        f"{field}.rules: priority {priority} is given more than once (a listener's rules have distinct priorities)"
        for priority in sorted({p for p in priorities if priorities.count(p) > 1})
    ]
    return problems


def rule_problems(field: str, rule: dict[str, Any], target_groups: list[str]) -> list[str]:
    """A listener rule: its priority, its path patterns (ELB's characters, limits and wildcards) and its action."""
    problems: list[str] = []
    in_range(problems, f"{field}.priority", rule["priority"], 1, 50000)
    patterns = rule["path_patterns"]
    if not 1 <= len(patterns) <= RULE_CONDITION_VALUES:
        problems.append(f"{field}.path_patterns must hold 1 to {RULE_CONDITION_VALUES} patterns, not {len(patterns)}")
    problems += [
        f"{field}.path_patterns: {pattern!r} must be 1 to 128 of A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?"
        for pattern in patterns
        if not PATH_PATTERN.fullmatch(pattern)
    ]
    wildcards = sum(pattern.count("*") + pattern.count("?") for pattern in patterns)
    if wildcards > RULE_WILDCARDS:
        problems.append(f"{field}.path_patterns hold {wildcards} wildcards; a rule takes at most {RULE_WILDCARDS}")
    return problems + action_problems(f"{field}.action", rule["action"], target_groups)


def present_problems(params: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    subnets = params["subnets"] or []
    if len(set(subnets)) < 2:
        problems.append("subnets must name at least two subnets (in different availability zones)")
    problems += [f"subnets: {s!r} is not a subnet ID (subnet-...)" for s in subnets if not s.startswith("subnet-")]
    problems += [
        f"security_groups: {g!r} is not a security group ID (sg-...); give IDs, not names"
        for g in params["security_groups"] or []
        if not re.fullmatch(r"sg-[0-9a-f]+", g)
    ]
    in_range(problems, "idle_timeout", params["idle_timeout"], 1, 4000)
    if params["idle_timeout"] is not None and IDLE_TIMEOUT in params["attributes"]:
        problems.append(f"give the idle timeout once: idle_timeout or attributes.{IDLE_TIMEOUT}")
    problems += [
        f"attributes: {key!r} is not an attribute key (such as routing.http2.enabled)"
        for key in params["attributes"]
        if not ATTRIBUTE_KEY.fullmatch(key)
    ]
    problems += scalar_problems("attributes", params["attributes"])
    problems += scalar_problems("tags", params["tags"])
    names = [group["name"] for group in params["target_groups"]]
    for index, group in enumerate(params["target_groups"]):
        problems += target_group_problems(index, group)
    for index, listener in enumerate(params["listeners"] or []):
        problems += listener_problems(index, listener, names)
    return problems


def check_input(module: AnsibleAWSModule) -> None:
    """Fail, before any AWS call, with every problem of the input in one message."""
    params = module.params
    fail_on_repeats(module, "target_groups", "target group", [group["name"] for group in params["target_groups"]])
    fail_on_repeats(module, "listeners", "port", [str(listener["port"]) for listener in params["listeners"] or []])
    problems = [name_problem("name", params["name"])]
    if params["name"].lower().startswith("internal-"):
        problems.append("name must not start with internal-")
    problems += [
        name_problem(f"target_groups[{index}].name", group["name"])
        for index, group in enumerate(params["target_groups"])
    ]
    if params["state"] == "present":
        problems += present_problems(params)
    if params["wait_timeout"] < 0:
        problems.append("wait_timeout must be 0 or more")
    problems = [problem for problem in problems if problem]
    if problems:
        module.fail_json(
            msg=f"Cannot manage load balancer {params['name']!r}: " + "; ".join(problems) + ". Nothing was changed."
        )


# --- What is wanted, in AWS's terms --------------------------------------------------------------


def wanted_tags(tags: dict | None) -> dict[str, str] | None:
    return None if tags is None else {str(key): as_text(value) for key, value in tags.items()}


def wanted_lb_attributes(params: dict[str, Any]) -> dict[str, str]:
    attributes = {str(key): as_text(value) for key, value in params["attributes"].items()}
    if params["idle_timeout"] is not None:
        attributes[IDLE_TIMEOUT] = str(params["idle_timeout"])
    return attributes


def wanted_health_check(group: dict[str, Any]) -> dict[str, Any]:
    """The given health check fields, as CreateTargetGroup / ModifyTargetGroup take them."""
    fields = {}
    for option, key in HEALTH_CHECK.items():
        value = (group["health_check"] or {}).get(option)
        if value is not None:
            fields[key] = {"HttpCode": value} if option == "success_codes" else value
    return fields


def reported_health_check(group: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """The health check fields `keys` of an existing target group, in the same form."""
    fields = {}
    for key in keys:
        value = group.get(key)
        fields[key] = {"HttpCode": (value or {}).get("HttpCode")} if key == "Matcher" else value
    return fields


def health_view(fields: dict[str, Any]) -> dict[str, Any]:
    by_key = {key: option for option, key in HEALTH_CHECK.items()}
    return {by_key[key]: (value or {}).get("HttpCode") if key == "Matcher" else value for key, value in fields.items()}


def action_view(action: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """One default action as AWS reports it, in the module's terms (a target group by name where known)."""
    kind = action.get("Type")
    if kind == "forward":
        config = action.get("ForwardConfig") or {}
        arns = (
            [action["TargetGroupArn"]]
            if action.get("TargetGroupArn")
            else [group["TargetGroupArn"] for group in config.get("TargetGroups", [])]
        )
        sticky = (config.get("TargetGroupStickinessConfig") or {}).get("Enabled")
        if len(arns) == 1 and not sticky:
            return {"type": "forward", "target_group": names.get(arns[0], arns[0])}
        return {"type": "forward", "target_groups": arns, "stickiness": bool(sticky)}
    if kind == "redirect":
        config = action.get("RedirectConfig") or {}
        redirect = {option: config.get(key) or REDIRECT_DEFAULTS[option] for option, key in REDIRECT_FIELDS.items()}
        return {"type": "redirect", "redirect": {**redirect, "status_code": config.get("StatusCode")}}
    if kind == "fixed-response":
        config = action.get("FixedResponseConfig") or {}
        response = {
            "status_code": config.get("StatusCode"),
            "content_type": config.get("ContentType"),
            "message_body": config.get("MessageBody") or None,
        }
        return {"type": "fixed-response", "fixed_response": response}
    return {"type": kind}


def wanted_action_view(action: dict[str, Any]) -> dict[str, Any]:
    """A default_action option in the same terms as action_view."""
    kind = action["type"]
    if kind == "forward":
        return {"type": "forward", "target_group": action["target_group"]}
    if kind == "redirect":
        given = action["redirect"]
        redirect = {option: given[option] or default for option, default in REDIRECT_DEFAULTS.items()}
        return {"type": "redirect", "redirect": {**redirect, "status_code": given["status_code"]}}
    given = action["fixed_response"]
    response = {key: given[key] or None for key in ("status_code", "content_type", "message_body")}
    return {"type": "fixed-response", "fixed_response": response}


def aws_action(action: dict[str, Any], arns: dict[str, str | None]) -> dict[str, Any]:
    """A default_action option as CreateListener / ModifyListener take it."""
    kind = action["type"]
    if kind == "forward":
        return {"Type": "forward", "TargetGroupArn": arns[action["target_group"]]}
    if kind == "redirect":
        given = action["redirect"]
        config = {key: given[option] for option, key in REDIRECT_FIELDS.items() if given[option] is not None}
        return {"Type": "redirect", "RedirectConfig": {**config, "StatusCode": given["status_code"]}}
    given = action["fixed_response"]
    config = {"StatusCode": given["status_code"]}
    if given["content_type"]:
        config["ContentType"] = given["content_type"]
    if given["message_body"]:
        config["MessageBody"] = given["message_body"]
    return {"Type": "fixed-response", "FixedResponseConfig": config}


def listener_view(listener: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """What is compared and shown of an existing listener."""
    actions = listener.get("DefaultActions") or []
    https = listener.get("Protocol") == "HTTPS"
    certificates = listener.get("Certificates") or []
    return {
        "protocol": listener.get("Protocol"),
        "certificate_arn": certificates[0]["CertificateArn"] if https and certificates else None,
        "ssl_policy": listener.get("SslPolicy") if https else None,
        "default_action": action_view(actions[0], names)
        if len(actions) == 1
        else [action_view(a, names) for a in actions],
    }


def wanted_listener_view(listener: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    https = listener["protocol"] == "HTTPS"
    ssl_policy = listener["ssl_policy"]
    if https and ssl_policy is None:  # not given: AWS's default, or what the listener has
        ssl_policy = (before or {}).get("ssl_policy")
    return {
        "protocol": listener["protocol"],
        "certificate_arn": listener["certificate_arn"] if https else None,
        "ssl_policy": ssl_policy if https else None,
        "default_action": wanted_action_view(listener["default_action"]),
    }


def rule_view(rule: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """What is compared and shown of an existing rule: its path patterns (sorted) and its action."""
    conditions = rule.get("Conditions") or []
    actions = rule.get("Actions") or []
    view: dict[str, Any] = {
        "action": action_view(actions[0], names) if len(actions) == 1 else [action_view(a, names) for a in actions]
    }
    if len(conditions) == 1 and conditions[0].get("Field") == "path-pattern":
        condition = conditions[0]
        view["path_patterns"] = sorted((condition.get("PathPatternConfig") or {}).get("Values") or condition["Values"])
    else:  # another kind of condition, or several: shown as AWS has them, so they differ from the wanted rule
        view["conditions"] = conditions
    return view


def wanted_rule_view(rule: dict[str, Any]) -> dict[str, Any]:
    return {"action": wanted_action_view(rule["action"]), "path_patterns": sorted(rule["path_patterns"])}


def aws_rule(rule: dict[str, Any], arns: dict[str, str | None]) -> dict[str, Any]:
    """A rule option as CreateRule / ModifyRule take its conditions and actions."""
    return {
        "Conditions": [{"Field": "path-pattern", "PathPatternConfig": {"Values": rule["path_patterns"]}}],
        "Actions": [aws_action(rule["action"], arns)],
    }


def arn_suffix(arn: str | None) -> str | None:
    """The resource part of an ELB ARN, as CloudWatch's dimensions name it: app/<name>/<id>, targetgroup/<name>/<id>."""
    if not arn:
        return None
    return arn.split(":", 5)[-1].removeprefix("loadbalancer/")


# --- The run -------------------------------------------------------------------------------------


class Run:
    """One run against ELBv2: reads, the plan, the writes, and what it changed."""

    def __init__(self, module: AnsibleAWSModule, client: Any) -> None:
        self.module = module
        self.client = client
        self.params = module.params
        self.name = module.params["name"]
        self.changed = False
        self.changes: list[str] = []

    # - calls --------------------------------------------------------------------------------------

    def call(self, method: str, msg: str, retry_codes: tuple[str, ...] = (), **params: Any) -> dict[str, Any]:
        """One ELBv2 call, retried (also while it answers one of `retry_codes`); a failure says `msg`."""
        operation = getattr(self.client, method)
        try:
            if retry_codes:
                return jittered_backoff(*retry_codes, retries=10, delay=1)(operation)(**params)
            return operation(aws_retry=True, **params)
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=msg, changed=self.changed)

    def write(self, change: str, method: str, msg: str, retry_codes: tuple[str, ...] = (), **params: Any) -> dict:
        """A write of the plan: recorded in `changes`, sent unless in check mode."""
        self.changes.append(change)
        if self.module.check_mode:
            return {}
        response = self.call(method, msg, retry_codes, **params)
        self.changed = True
        return response

    def find_load_balancer(self) -> dict[str, Any] | None:
        try:
            found = self.client.describe_load_balancers(Names=[self.name], aws_retry=True)["LoadBalancers"]
        except is_boto3_error_code("LoadBalancerNotFound"):
            return None
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe load balancer {self.name!r}")
        return found[0] if found else None

    def find_target_groups(self, names: list[str]) -> dict[str, dict]:
        """The existing target groups among `names`, by name: one DescribeTargetGroups (one a name if one is gone)."""
        if not names:
            return {}
        try:
            found = self.client.describe_target_groups(Names=names, aws_retry=True)["TargetGroups"]
        except is_boto3_error_code("TargetGroupNotFound"):
            if len(names) == 1:
                return {}
            found = [group for name in names for group in self.find_target_groups([name]).values()]
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to describe the target groups {', '.join(names)}")
        return {group["TargetGroupName"]: group for group in found if group["TargetGroupName"] in names}

    def find_listeners(self, lb_arn: str) -> dict[int, dict]:
        """The ALB's listeners by port (DescribeListeners, followed page by page)."""
        listeners: dict[int, dict] = {}
        request: dict[str, Any] = {"LoadBalancerArn": lb_arn}
        while True:
            page = self.call(
                "describe_listeners", f"Failed to describe the listeners of load balancer {self.name!r}", **request
            )
            listeners.update({listener["Port"]: listener for listener in page.get("Listeners", [])})
            if not page.get("NextMarker"):
                return listeners
            request["Marker"] = page["NextMarker"]

    def find_rules(self, listener_arn: str, port: int) -> dict[int, dict]:
        """The listener's rules other than its default one, by priority (DescribeRules, page by page)."""
        rules: dict[int, dict] = {}
        request: dict[str, Any] = {"ListenerArn": listener_arn}
        while True:
            page = self.call(
                "describe_rules",
                f"Failed to describe the rules of listener {port} of load balancer {self.name!r}",
                **request,
            )
            rules.update({int(rule["Priority"]): rule for rule in page.get("Rules", []) if not rule.get("IsDefault")})
            if not page.get("NextMarker"):
                return rules
            request["Marker"] = page["NextMarker"]

    def find_tags(self, arns: list[str]) -> dict[str, dict[str, str]]:
        """The tags of `arns` by ARN: one DescribeTags per 20 ARNs."""
        tags: dict[str, dict[str, str]] = {}
        for start in range(0, len(arns), TAG_ARNS_PER_CALL):
            chunk = arns[start : start + TAG_ARNS_PER_CALL]
            response = self.call(
                "describe_tags",
                f"Failed to read the tags of load balancer {self.name!r} and its parts",
                ResourceArns=chunk,
            )
            for description in response.get("TagDescriptions", []):
                tags[description["ResourceArn"]] = boto3_tag_list_to_ansible_dict(description.get("Tags") or [])
        return {arn: tags.get(arn, {}) for arn in arns}

    def attributes_of(self, method: str, what: str, **params: Any) -> dict[str, str]:
        response = self.call(method, f"Failed to read the attributes of {what}", **params)
        return {attribute["Key"]: attribute["Value"] for attribute in response.get("Attributes", [])}

    # - present: plan ------------------------------------------------------------------------------

    def plan_tags(self, current: dict[str, str] | None, tags: dict[str, str] | None) -> dict[str, Any]:
        """Tags to set and unset on one resource (`current` None: a new resource, tagged at creation)."""
        if tags is None:
            return {"before": None, "after": None, "set": {}, "unset": []}
        if current is None:
            return {"before": None, "after": tags, "set": {}, "unset": []}
        after = desired_tags({"tags": tags, "purge_tags": self.params["purge_tags"]}, current)
        return {
            "before": current,
            "after": after,
            "set": {key: value for key, value in after.items() if current.get(key) != value},
            "unset": [key for key in current if key not in after],
        }

    def plan_target_group(self, group: dict, current: dict | None, attributes: dict, tags: dict | None) -> dict:
        name = group["name"]
        problems = []
        if current:
            for option, key in (
                ("protocol", "Protocol"),
                ("port", "Port"),
                ("vpc_id", "VpcId"),
                ("target_type", "TargetType"),
            ):
                if current.get(key) != group[option]:
                    problems.append(
                        f"target group {name} has {option} {current.get(key)}, not {group[option]}: the {option} of a "
                        "target group cannot change (give the new one another name, move the listeners to it, then "
                        "delete this one)"
                    )
        health = wanted_health_check(group)
        health_before = reported_health_check(current, list(health)) if current else None
        delay = group["deregistration_delay"]
        delay_before = attributes.get(DEREGISTRATION_DELAY) if current else None
        view = {
            "protocol": group["protocol"],
            "port": group["port"],
            "target_type": group["target_type"],
            "vpc_id": group["vpc_id"],
        }
        before = after = None
        tag_plan = self.plan_tags(tags if current else None, wanted_tags(group["tags"]))
        if current:
            before = {
                "arn": current["TargetGroupArn"],
                "protocol": current.get("Protocol"),
                "port": current.get("Port"),
                "target_type": current.get("TargetType"),
                "vpc_id": current.get("VpcId"),
                "health_check": health_view(health_before),
            }
            if delay is not None:
                before["deregistration_delay"] = int(delay_before) if delay_before is not None else None
            if tag_plan["before"] is not None:
                before["tags"] = tag_plan["before"]
        after = {"arn": current["TargetGroupArn"] if current else None, **view, "health_check": health_view(health)}
        if delay is not None:
            after["deregistration_delay"] = delay
        if tag_plan["after"] is not None:
            after["tags"] = tag_plan["after"]
        return {
            "name": name,
            "spec": group,
            "current": current,
            "problems": problems,
            "health": health,
            "modify_health": bool(current) and health != health_before,
            "set_delay": delay is not None and (not current or str(delay) != delay_before),
            "tags": tag_plan,
            "before": before,
            "after": after,
        }

    def plan_load_balancer(self, current: dict | None, attributes: dict, tags: dict | None) -> dict:
        params = self.params
        problems = []
        wanted_attributes = wanted_lb_attributes(params)
        if current:
            if current.get("Type") != "application":
                problems.append(
                    f"load balancer {self.name} is a {current.get('Type')} load balancer, not an application one"
                )
            if current.get("Scheme") != params["scheme"]:
                problems.append(
                    f"load balancer {self.name} is {current.get('Scheme')}, not {params['scheme']}: the scheme of a "
                    "load balancer cannot change (delete it, or create another one under another name)"
                )
        subnets = sorted(set(params["subnets"] or []))
        groups = sorted(set(params["security_groups"])) if params["security_groups"] is not None else None
        subnets_before = sorted(zone["SubnetId"] for zone in current.get("AvailabilityZones", [])) if current else None
        groups_before = sorted(current.get("SecurityGroups") or []) if current else None
        attributes_before = {key: attributes.get(key) for key in wanted_attributes} if current else {}
        tag_plan = self.plan_tags(tags if current else None, wanted_tags(params["tags"]))
        before = None
        if current:
            before = {
                "arn": current["LoadBalancerArn"],
                "dns_name": current.get("DNSName"),
                "scheme": current.get("Scheme"),
                "subnets": subnets_before,
                "security_groups": groups_before,
                "attributes": attributes_before,
            }
            if tag_plan["before"] is not None:
                before["tags"] = tag_plan["before"]
        after = {
            "arn": current["LoadBalancerArn"] if current else None,
            "dns_name": current.get("DNSName") if current else None,
            "scheme": params["scheme"],
            "subnets": subnets,
            "security_groups": groups if groups is not None else groups_before,
            "attributes": wanted_attributes,
        }
        if tag_plan["after"] is not None:
            after["tags"] = tag_plan["after"]
        return {
            "current": current,
            "problems": problems,
            "set_subnets": bool(current) and subnets != subnets_before,
            "set_groups": bool(current) and groups is not None and groups != groups_before,
            "attributes": {
                key: value for key, value in wanted_attributes.items() if not current or attributes_before[key] != value
            },
            "attributes_before": attributes_before,
            "tags": tag_plan,
            "before": before,
            "after": after,
        }

    def plan_rules(self, listener: dict, found: dict[int, dict], tags: dict[str, dict], names: dict[str, str]) -> dict:
        """The rules of one listener: each given one to create, update or keep; the others to delete."""
        wanted = {rule["priority"] for rule in listener["rules"]}
        plans = []
        for rule in sorted(listener["rules"], key=lambda r: r["priority"]):
            current = found.get(rule["priority"])
            before = rule_view(current, names) if current else None
            after = wanted_rule_view(rule)
            plans.append(
                {
                    "spec": rule,
                    "current": current,
                    "modify": bool(current) and before != after,
                    "tags": self.plan_tags(
                        tags.get(current["RuleArn"]) if current else None, wanted_tags(listener["tags"])
                    ),
                    "before": before,
                    "after": after,
                }
            )
        purged = [found[priority] for priority in sorted(found) if priority not in wanted]
        return {
            "rules": plans,
            "purged": purged,
            "before": {
                **{str(p["spec"]["priority"]): p["before"] for p in plans if p["before"]},
                **{gone["Priority"]: rule_view(gone, names) for gone in purged},
            },
            "after": {str(p["spec"]["priority"]): p["after"] for p in plans},
        }

    def plan_listeners(
        self, found: dict[int, dict], tags: dict[str, dict], names: dict[str, str], rules: dict[int, dict]
    ) -> list[dict]:
        plans = []
        for listener in self.params["listeners"] or []:
            current = found.get(listener["port"])
            before = listener_view(current, names) if current else None
            after = wanted_listener_view(listener, before)
            tag_plan = self.plan_tags(
                tags.get(current["ListenerArn"]) if current else None, wanted_tags(listener["tags"])
            )
            if before is not None and tag_plan["before"] is not None:
                before["tags"] = tag_plan["before"]
            if tag_plan["after"] is not None:
                after["tags"] = tag_plan["after"]
            compared = ("protocol", "certificate_arn", "ssl_policy", "default_action")
            modify = bool(current) and any(before[key] != after[key] for key in compared)
            rule_plan = {"rules": [], "purged": []}
            if listener["rules"] is not None:
                rule_plan = self.plan_rules(listener, rules.get(listener["port"], {}), tags, names)
                if before is not None:
                    before["rules"] = rule_plan["before"]
                after["rules"] = rule_plan["after"]
            plans.append(
                {
                    "spec": listener,
                    "current": current,
                    "modify": modify,
                    "tags": tag_plan,
                    "rules": rule_plan["rules"],
                    "purged_rules": rule_plan["purged"],
                    "before": before,
                    "after": after,
                }
            )
        return plans

    def read_and_plan(self) -> dict[str, Any]:
        """Every read of a run, then the plan; fails before any write on what cannot change in place."""
        params = self.params
        lb = self.find_load_balancer()
        groups_found = self.find_target_groups([group["name"] for group in params["target_groups"]])
        lb_arn = lb["LoadBalancerArn"] if lb else None

        lb_attributes = {}
        if lb and wanted_lb_attributes(params):
            lb_attributes = self.attributes_of(
                "describe_load_balancer_attributes", f"load balancer {self.name!r}", LoadBalancerArn=lb_arn
            )
        group_attributes = {
            group["name"]: self.attributes_of(
                "describe_target_group_attributes",
                f"target group {group['name']!r}",
                TargetGroupArn=groups_found[group["name"]]["TargetGroupArn"],
            )
            for group in params["target_groups"]
            if group["name"] in groups_found and group["deregistration_delay"] is not None
        }
        listeners_found = self.find_listeners(lb_arn) if lb and params["listeners"] is not None else {}
        rules_found = {
            listener["port"]: self.find_rules(listeners_found[listener["port"]]["ListenerArn"], listener["port"])
            for listener in params["listeners"] or []
            if listener["rules"] is not None and listener["port"] in listeners_found
        }

        # One DescribeTags for every existing resource whose tags are given.
        tagged = [lb_arn] if lb and params["tags"] is not None else []
        tagged += [
            groups_found[group["name"]]["TargetGroupArn"]
            for group in params["target_groups"]
            if group["name"] in groups_found and group["tags"] is not None
        ]
        tagged += [
            listeners_found[listener["port"]]["ListenerArn"]
            for listener in params["listeners"] or []
            if listener["port"] in listeners_found and listener["tags"] is not None
        ]
        tagged += [  # the rules of a listener take its tags
            rules_found[listener["port"]][rule["priority"]]["RuleArn"]
            for listener in params["listeners"] or []
            if listener["tags"] is not None
            for rule in listener["rules"] or []
            if rule["priority"] in rules_found.get(listener["port"], {})
        ]
        tags = self.find_tags(tagged) if tagged else {}

        names = {group["TargetGroupArn"]: name for name, group in groups_found.items()}
        group_plans = [
            self.plan_target_group(
                group,
                groups_found.get(group["name"]),
                group_attributes.get(group["name"], {}),
                tags.get(groups_found[group["name"]]["TargetGroupArn"]) if group["name"] in groups_found else None,
            )
            for group in params["target_groups"]
        ]
        lb_plan = self.plan_load_balancer(lb, lb_attributes, tags.get(lb_arn) if lb else None)
        if lb:  # a target group of another VPC cannot be forwarded to
            lb_plan["problems"] += [
                f"target group {plan['name']} is for VPC {plan['spec']['vpc_id']}, but load balancer {self.name} is "
                f"in VPC {lb.get('VpcId')}"
                for plan in group_plans
                if plan["spec"]["vpc_id"] != lb.get("VpcId")
            ]
        listener_plans = self.plan_listeners(listeners_found, tags, names, rules_found)
        wanted_ports = {listener["port"] for listener in params["listeners"] or []}
        purged = (
            [listeners_found[port] for port in sorted(listeners_found) if port not in wanted_ports]
            if params["listeners"] is not None and params["purge_listeners"]
            else []
        )
        problems = [problem for plan in group_plans for problem in plan["problems"]] + lb_plan["problems"]
        if problems:
            self.module.fail_json(
                msg=f"Cannot manage load balancer {self.name!r}: " + "; ".join(problems) + ". Nothing was changed."
            )
        return {
            "target_groups": group_plans,
            "load_balancer": lb_plan,
            "listeners": listener_plans,
            "purged": purged,
            "names": names,
        }

    # - present: writes ----------------------------------------------------------------------------

    def retag(self, what: str, arn: str | None, plan: dict[str, Any], new: bool) -> None:
        """Set and unset the planned tags of an existing resource (a new one got them at creation)."""
        if new:
            return
        if plan["unset"]:
            self.write(
                f"remove tags {', '.join(plan['unset'])} from {what}",
                "remove_tags",
                f"Failed to remove tags from {what}",
                ResourceArns=[arn],
                TagKeys=plan["unset"],
            )
        if plan["set"]:
            self.write(
                f"set tags {', '.join(sorted(plan['set']))} on {what}",
                "add_tags",
                f"Failed to tag {what}",
                ResourceArns=[arn],
                Tags=ansible_dict_to_boto3_tag_list(plan["set"]),
            )

    def apply_target_group(self, plan: dict[str, Any]) -> str | None:
        """Create or update one target group; returns its ARN (None in check mode for a new one)."""
        group, current = plan["spec"], plan["current"]
        name = group["name"]
        what = f"target group {name}"
        arn = current["TargetGroupArn"] if current else None
        if not current:
            params: dict[str, Any] = {
                "Name": name,
                "Protocol": group["protocol"],
                "Port": group["port"],
                "VpcId": group["vpc_id"],
                "TargetType": group["target_type"],
                **plan["health"],
            }
            if plan["tags"]["after"]:
                params["Tags"] = ansible_dict_to_boto3_tag_list(plan["tags"]["after"])
            created = self.write(f"create {what}", "create_target_group", f"Failed to create {what}", **params)
            arn = created["TargetGroups"][0]["TargetGroupArn"] if created else None
            plan["after"]["arn"] = arn
        elif plan["modify_health"]:
            wanted, before = health_view(plan["health"]), plan["before"]["health_check"]
            changed = sorted(option for option, value in wanted.items() if before.get(option) != value)
            self.write(
                f"update the health check of {what} ({', '.join(changed)})",
                "modify_target_group",
                f"Failed to update the health check of {what}",
                TargetGroupArn=arn,
                **plan["health"],
            )
        if plan["set_delay"]:
            delay = group["deregistration_delay"]
            self.write(
                f"set the deregistration delay of {what} to {delay}",
                "modify_target_group_attributes",
                f"Failed to set the deregistration delay of {what}",
                retry_codes=NEW_RESOURCE if not current else (),
                TargetGroupArn=arn,
                Attributes=[{"Key": DEREGISTRATION_DELAY, "Value": str(delay)}],
            )
        self.retag(what, arn, plan["tags"], new=not current)
        return arn

    def apply_load_balancer(self, plan: dict[str, Any]) -> dict[str, Any] | None:
        """Create or update the ALB; returns it as AWS describes it (None in check mode for a new one)."""
        params, current = self.params, plan["current"]
        what = f"load balancer {self.name}"
        lb = current
        if not current:
            request: dict[str, Any] = {
                "Name": self.name,
                "Subnets": plan["after"]["subnets"],
                "Scheme": params["scheme"],
                "Type": "application",
            }
            if params["security_groups"] is not None:
                request["SecurityGroups"] = plan["after"]["security_groups"]
            if plan["tags"]["after"]:
                request["Tags"] = ansible_dict_to_boto3_tag_list(plan["tags"]["after"])
            created = self.write(f"create {what}", "create_load_balancer", f"Failed to create {what}", **request)
            lb = created["LoadBalancers"][0] if created else None
        arn = lb["LoadBalancerArn"] if lb else None
        if plan["set_subnets"]:
            self.write(
                f"set the subnets of {what} to {', '.join(plan['after']['subnets'])}",
                "set_subnets",
                f"Failed to set the subnets of {what}",
                LoadBalancerArn=arn,
                Subnets=plan["after"]["subnets"],
            )
        if plan["set_groups"]:
            self.write(
                f"set the security groups of {what} to {', '.join(plan['after']['security_groups'])}",
                "set_security_groups",
                f"Failed to set the security groups of {what}",
                LoadBalancerArn=arn,
                SecurityGroups=plan["after"]["security_groups"],
            )
        if plan["attributes"]:
            settings = ", ".join(f"{key} to {value}" for key, value in plan["attributes"].items())
            self.write(
                f"set {settings} on {what}",
                "modify_load_balancer_attributes",
                f"Failed to set the attributes of {what}",
                retry_codes=NEW_RESOURCE if not current else (),
                LoadBalancerArn=arn,
                Attributes=[{"Key": key, "Value": value} for key, value in plan["attributes"].items()],
            )
        self.retag(what, arn, plan["tags"], new=not current)
        return lb

    def apply_listeners(self, plans: list[dict], purged: list[dict], lb_arn: str | None, arns: dict) -> None:
        for listener in purged:
            what = f"listener {listener['Port']} of load balancer {self.name}"
            self.write(
                f"delete {what}", "delete_listener", f"Failed to delete {what}", ListenerArn=listener["ListenerArn"]
            )
        for plan in plans:
            spec, current = plan["spec"], plan["current"]
            what = f"listener {spec['port']} of load balancer {self.name}"
            request: dict[str, Any] = {
                "Port": spec["port"],
                "Protocol": spec["protocol"],
                "DefaultActions": [aws_action(spec["default_action"], arns)],
            }
            if spec["protocol"] == "HTTPS":
                request["Certificates"] = [{"CertificateArn": spec["certificate_arn"]}]
                if spec["ssl_policy"]:
                    request["SslPolicy"] = spec["ssl_policy"]
            if not current:
                if plan["tags"]["after"]:
                    request["Tags"] = ansible_dict_to_boto3_tag_list(plan["tags"]["after"])
                created = self.write(
                    f"create {what}",
                    "create_listener",
                    f"Failed to create {what}",
                    retry_codes=NEW_RESOURCE,
                    LoadBalancerArn=lb_arn,
                    **request,
                )
                plan["arn"] = created["Listeners"][0]["ListenerArn"] if created else None
            else:
                plan["arn"] = current["ListenerArn"]
                if plan["modify"]:
                    self.write(
                        f"update {what}",
                        "modify_listener",
                        f"Failed to update {what}",
                        retry_codes=NEW_RESOURCE,
                        ListenerArn=current["ListenerArn"],
                        **request,
                    )
                self.retag(what, current["ListenerArn"], plan["tags"], new=False)
            self.apply_rules(plan, what, arns)

    def apply_rules(self, plan: dict[str, Any], listener: str, arns: dict) -> None:
        """Delete the listener's rules not given, then update or create the given ones (before any request
        reaches a new listener's default action, when it is new)."""
        for gone in plan["purged_rules"]:
            what = f"rule {gone['Priority']} of {listener}"
            self.write(f"delete {what}", "delete_rule", f"Failed to delete {what}", RuleArn=gone["RuleArn"])
        for rule in plan["rules"]:
            spec, current = rule["spec"], rule["current"]
            what = f"rule {spec['priority']} of {listener}"
            request = aws_rule(spec, arns)
            if not current:
                if rule["tags"]["after"]:
                    request["Tags"] = ansible_dict_to_boto3_tag_list(rule["tags"]["after"])
                created = self.write(
                    f"create {what}",
                    "create_rule",
                    f"Failed to create {what}",
                    retry_codes=NEW_RESOURCE,
                    ListenerArn=plan["arn"],
                    Priority=spec["priority"],
                    **request,
                )
                rule["arn"] = created["Rules"][0]["RuleArn"] if created else None
                continue
            rule["arn"] = current["RuleArn"]
            if rule["modify"]:
                self.write(
                    f"update {what}", "modify_rule", f"Failed to update {what}", RuleArn=current["RuleArn"], **request
                )
            self.retag(what, current["RuleArn"], rule["tags"], new=False)

    def present(self) -> dict[str, Any]:
        plan = self.read_and_plan()
        arns: dict[str, str | None] = {}
        for group_plan in plan["target_groups"]:
            arns[group_plan["name"]] = self.apply_target_group(group_plan)
        lb_plan = plan["load_balancer"]
        lb = self.apply_load_balancer(lb_plan)
        lb_arn = lb["LoadBalancerArn"] if lb else None
        self.apply_listeners(plan["listeners"], plan["purged"], lb_arn, arns)

        lb_plan["after"].update(arn=lb_arn, dns_name=lb.get("DNSName") if lb else None)
        diff_before = {"load_balancer": lb_plan["before"]} if lb_plan["before"] else {}
        diff_after = {"load_balancer": lb_plan["after"]}
        group_before = {p["name"]: p["before"] for p in plan["target_groups"] if p["before"]}
        if group_before:
            diff_before["target_groups"] = group_before
        diff_after["target_groups"] = {p["name"]: p["after"] for p in plan["target_groups"]}
        if self.params["listeners"] is not None:
            listeners_before = {str(p["spec"]["port"]): p["before"] for p in plan["listeners"] if p["before"]}
            listeners_before.update({str(gone["Port"]): listener_view(gone, plan["names"]) for gone in plan["purged"]})
            if listeners_before:
                diff_before["listeners"] = listeners_before
            diff_after["listeners"] = {str(p["spec"]["port"]): p["after"] for p in plan["listeners"]}
        return {
            "changed": bool(self.changes),
            "changes": self.changes,
            "load_balancer": {
                "arn": lb_arn,
                "arn_suffix": arn_suffix(lb_arn),
                "dns_name": lb.get("DNSName") if lb else None,
                "canonical_hosted_zone_id": lb.get("CanonicalHostedZoneId") if lb else None,
                "vpc_id": lb.get("VpcId") if lb else None,
            },
            "target_groups": {name: {"arn": arn, "arn_suffix": arn_suffix(arn)} for name, arn in arns.items()},
            "listeners": [
                {
                    "port": p["spec"]["port"],
                    "protocol": p["spec"]["protocol"],
                    "arn": p.get("arn"),
                    "rules": [{"priority": r["spec"]["priority"], "arn": r.get("arn")} for r in p["rules"]],
                }
                for p in plan["listeners"]
            ],
            "diff": {"before": diff_before, "after": diff_after},
        }

    # - absent -------------------------------------------------------------------------------------

    def wait_gone(self, arn: str) -> None:
        """Poll DescribeLoadBalancers (first at once, then after a growing delay) until the ALB is gone."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        delay = 1.0
        while True:
            try:
                self.client.describe_load_balancers(LoadBalancerArns=[arn], aws_retry=True)
            except is_boto3_error_code("LoadBalancerNotFound"):
                return
            except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
                self.module.fail_json_aws(e, msg=f"Failed to describe load balancer {self.name!r}", changed=True)
            if time.monotonic() + delay > deadline:
                self.module.fail_json(
                    msg=f"Load balancer {self.name} was still listed {self.params['wait_timeout']} s after its "
                    "deletion; its target groups were not deleted. Run again to finish.",
                    changed=True,
                )
            time.sleep(delay)
            delay = min(delay * 2, 15)

    def delete_target_group(self, name: str, arn: str) -> None:
        """DeleteTargetGroup, retried while AWS says it is in use (the deleted ALB's listeners go with a delay)."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        delay = 1.0
        while True:
            try:
                self.client.delete_target_group(TargetGroupArn=arn, aws_retry=True)
                self.changed = True
                return
            except is_boto3_error_code("TargetGroupNotFound"):
                return
            except is_boto3_error_code("ResourceInUse") as e:  # pylint: disable=duplicate-except
                if time.monotonic() + delay > deadline:
                    self.module.fail_json_aws(
                        e,
                        msg=f"Target group {name} is still in use {self.params['wait_timeout']} s after the deletion "
                        f"of load balancer {self.name}: another load balancer's listener or rule forwards to it",
                        changed=self.changed,
                    )
            except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
                self.module.fail_json_aws(e, msg=f"Failed to delete target group {name}", changed=self.changed)
            time.sleep(delay)
            delay = min(delay * 2, 15)

    def absent(self) -> dict[str, Any]:
        lb = self.find_load_balancer()
        groups = self.find_target_groups([group["name"] for group in self.params["target_groups"]])
        before: dict[str, Any] = {}
        if lb:
            if lb.get("Type") != "application":
                self.module.fail_json(
                    msg=f"Load balancer {self.name} is a {lb.get('Type')} load balancer, not an application one. "
                    "Nothing was changed."
                )
            before["load_balancer"] = {
                "arn": lb["LoadBalancerArn"],
                "dns_name": lb.get("DNSName"),
                "scheme": lb.get("Scheme"),
            }
            self.changes.append(f"delete load balancer {self.name}")
        if groups:
            before["target_groups"] = {name: {"arn": group["TargetGroupArn"]} for name, group in groups.items()}
            self.changes += [f"delete target group {name}" for name in groups]
        if not self.module.check_mode:
            if lb:
                self.call(
                    "delete_load_balancer",
                    f"Failed to delete load balancer {self.name}",
                    LoadBalancerArn=lb["LoadBalancerArn"],
                )
                self.changed = True
                self.wait_gone(lb["LoadBalancerArn"])
            for name, group in groups.items():
                self.delete_target_group(name, group["TargetGroupArn"])
        return {
            "changed": bool(self.changes),
            "changes": self.changes,
            "load_balancer": {},
            "target_groups": {},
            "listeners": [],
            "diff": {"before": before, "after": {}},
        }


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    check_input(module)
    client = module.client("elbv2", retry_decorator=jittered_backoff())
    run = Run(module, client)
    result = run.present() if module.params["state"] == "present" else run.absent()
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
