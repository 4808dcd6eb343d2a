#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several SNS topics with their subscriptions in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sns_topics
short_description: Manage several standard SNS topics, their display names, tags and subscriptions
description:
  - Creates, updates or deletes a list of standard SNS topics, each found by its name, with its display name,
    tags and subscriptions (protocol and endpoint), in one module run.
  - M(community.aws.sns_topic) finds a topic by paging through every topic of the account (C(ListTopics)), and
    reads the topic and its subscriptions several times a run. Here each topic's ARN is built from its name
    (C(arn:<partition>:sns:<region>:<account>:<name>)), the partition from the region and the account from
    O(account_id) or, left out, from one C(sts:GetCallerIdentity) for the whole run.
  - Each topic is read with one C(GetTopicAttributes); C(NotFound) means the topic is missing. For an existing
    topic the subscriptions are read with one C(ListSubscriptionsByTopic) (more only when SNS pages the answer)
    and the tags with one C(ListTagsForResource), each only when O(topics[].subscriptions), respectively
    O(topics[].tags), is given. When nothing differs those are the only calls.
  - A missing topic is created with one C(CreateTopic) carrying its display name and tags, then subscribed
    (C(Subscribe)) to each of its endpoints, without reading anything more.
  - An existing topic gets a C(SetTopicAttributes) for a changed display name, C(TagResource) and
    C(UntagResource) for changed tags, a C(Subscribe) per endpoint that has no subscription and, with
    O(purge_subscriptions), an C(Unsubscribe) per confirmed subscription that is not listed.
  - A subscription awaiting confirmation (SNS lists it with the ARN C(PendingConfirmation), as an e-mail address
    that has not clicked the link) counts as present. It is never subscribed again (SNS would send another
    confirmation message) and is no change. SNS cannot unsubscribe it (it has no ARN yet), so one that is no
    longer listed is left to SNS, which deletes an unconfirmed subscription 48 hours after it was made; the run
    warns about it and lists it in RV(topics.pending). If its address confirms meanwhile, the next run
    unsubscribes it.
  - With O(state=absent) each topic of O(topics) that exists is deleted with C(DeleteTopic), which deletes its
    subscriptions too. Only the named topics are touched; O(topics[].name) is the only field read.
  - Input is checked before any AWS call; every problem is reported in one message that names the topic and the
    field.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(topics) and the diff show what the
    run would do.
author:
  - airflow-ecs project
options:
  topics:
    description:
      - The topics, each with what it should have. A field left out (null) is neither read nor changed.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the topic, 1 to 256 characters from C(A-Z), C(a-z), C(0-9), C(_) and C(-). It identifies the
            topic. FIFO topics (names ending in C(.fifo)) are not managed.
        type: str
        required: true
      display_name:
        description:
          - The topic's C(DisplayName) (the sender name of its e-mails), up to 100 characters; V("") clears it.
        type: str
      tags:
        description:
          - Tags of the topic, as a dict; values are sent as strings. At most 50, keys not starting with C(aws:).
        type: dict
      subscriptions:
        description:
          - The endpoints subscribed to the topic. Each is identified by its protocol and endpoint; a listed one
            without a subscription is subscribed.
          - With O(purge_subscriptions) the confirmed subscriptions of the topic that are not listed are removed;
            V([]) removes them all.
        type: list
        elements: dict
        suboptions:
          protocol:
            description:
              - The protocol. Protocols that need subscription attributes (C(firehose)) are not managed.
            type: str
            required: true
            choices: [email, email-json, http, https, sqs, lambda, sms, application]
          endpoint:
            description:
              - An e-mail address for V(email) and V(email-json), a URL for V(http) and V(https), an ARN for
                V(sqs), V(lambda) and V(application), a phone number in E.164 form for V(sms) (spaces, dots,
                dashes and brackets are dropped, as SNS does).
            type: str
            required: true
  account_id:
    description:
      - The 12-digit account of the credentials, to build the topics' ARNs without asking STS.
      - Left out, one C(sts:GetCallerIdentity) call reads it.
      - It must be the credentials' account. A topic created by the run whose ARN is not the one built fails the
        run with a message saying so.
    type: str
  purge_subscriptions:
    description:
      - Remove the confirmed subscriptions of a topic that are not in its O(topics[].subscriptions).
      - Has no effect on a topic whose O(topics[].subscriptions) is not given.
    type: bool
    default: true
  purge_tags:
    description:
      - Remove the tags of a topic that are not in its O(topics[].tags). Tags whose key starts with C(aws:) are
        never removed.
      - Has no effect on a topic whose O(topics[].tags) is not given.
    type: bool
    default: true
  state:
    description:
      - V(present) creates and updates O(topics); V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per topic when nothing changes are one C(GetTopicAttributes), plus one C(ListSubscriptionsByTopic)
    when O(topics[].subscriptions) is given and one C(ListTagsForResource) when O(topics[].tags) is given; plus
    one C(sts:GetCallerIdentity) per run when O(account_id) is left out.
  - A new topic costs C(GetTopicAttributes), C(CreateTopic) and one C(Subscribe) per endpoint. With O(state=absent)
    a topic costs one C(GetTopicAttributes) and, when it exists, one C(DeleteTopic).
  - IAM actions used are sns:GetTopicAttributes, sns:ListSubscriptionsByTopic, sns:ListTagsForResource,
    sns:CreateTopic (and sns:TagResource for tags given at creation), sns:SetTopicAttributes, sns:TagResource,
    sns:UntagResource, sns:Subscribe, sns:Unsubscribe, sns:DeleteTopic, and sts:GetCallerIdentity without
    O(account_id). sns:ListTopics is not used.
  - Calls and time against M(community.aws.sns_topic) are in library/README.md.
seealso:
  - module: community.aws.sns_topic
  - name: Amazon SNS subscription confirmation
    description: Unconfirmed subscriptions are deleted after 48 hours.
    link: https://docs.aws.amazon.com/sns/latest/dg/SendMessageToHttp.confirm.html
"""

EXAMPLES = r"""
- name: Create the alarm topic with two e-mail subscriptions
  sns_topics:
    topics:
      - name: airflow-alarms
        display_name: airflow alarms
        tags: {airflow-ecs:stack: airflow}
        subscriptions:
          - {protocol: email, endpoint: oncall@example.com}
          - {protocol: email, endpoint: ops@example.com}
    account_id: "{{ preflight_account_id }}"  # saves the STS call
  register: __topics

- name: Show the topic's ARN and the addresses that have not confirmed yet
  ansible.builtin.debug:
    msg: "{{ __topics.topics['airflow-alarms'].arn }}: {{ __topics.topics['airflow-alarms'].pending }}"

- name: Delete the topic and its subscriptions (no other topic is touched)
  sns_topics:
    topics: [{name: airflow-alarms}]
    state: absent
"""

RETURN = r"""
topics:
  description:
    - Every topic of O(topics), by name. In check mode, what the run would do.
  returned: always
  type: dict
  contains:
    arn:
      description: The topic's ARN (also in check mode for a topic that does not exist yet).
      type: str
      sample: arn:aws:sns:us-east-1:123456789012:airflow-alarms
    created:
      description: Whether the run created the topic.
      type: bool
    deleted:
      description: Whether the run deleted the topic (O(state=absent)).
      type: bool
    changed:
      description: Whether the run created, changed or deleted the topic.
      type: bool
    changes:
      description:
        - What the run set, of V(display_name), V(tags) and V(subscriptions); for a new topic, what it was given.
      type: list
      elements: str
      sample: [tags]
    subscribed:
      description: The endpoints the run subscribed, as C(protocol:endpoint).
      type: list
      elements: str
      sample: ["email:oncall@example.com"]
    unsubscribed:
      description: The confirmed subscriptions the run removed, as C(protocol:endpoint).
      type: list
      elements: str
    pending:
      description:
        - The subscriptions awaiting confirmation after the run, listed or not, as C(protocol:endpoint); those
          the run made are among them when SNS answered C(pending confirmation) (never in check mode).
      type: list
      elements: str
      sample: ["email:ops@example.com"]
diff:
  description:
    - Every topic that exists before, respectively after, the run, by name, with its display name and, where
      managed, its tags and subscriptions (C(protocol:endpoint), sorted).
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The topics before the run.
      type: dict
      sample: {"airflow-alarms": {"display_name": "", "subscriptions": [], "tags": {}}}
    after:
      description: The topics after the run.
      type: dict
      sample: {"airflow-alarms": {"display_name": "airflow alarms", "subscriptions": ["email:ops@example.com"]}}
"""

import contextlib
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.desired_tags import desired_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
ACCOUNT = re.compile(r"[0-9]{12}")
PROTOCOLS = ["email", "email-json", "http", "https", "sqs", "lambda", "sms", "application"]
# What each protocol's endpoint looks like (SNS checks more; this catches the usual slips before any call).
ENDPOINTS = {
    "email": (re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an e-mail address such as ops@example.com"),
    "email-json": (re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "an e-mail address such as ops@example.com"),
    "http": (re.compile(r"http://\S+"), "a URL starting with http://"),
    "https": (re.compile(r"https://\S+"), "a URL starting with https://"),
    "sqs": (re.compile(r"arn:aws[a-z-]*:sqs:[a-z0-9-]+:[0-9]{12}:\S+"), "the ARN of an SQS queue"),
    "lambda": (re.compile(r"arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:\S+"), "the ARN of a function"),
    "sms": (re.compile(r"\+[1-9][0-9]{1,14}"), "a phone number in E.164 form such as +15555550100"),
    "application": (re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:endpoint/\S+"), "a platform endpoint ARN"),
}
# ListSubscriptionsByTopic's ARN of a subscription that awaits confirmation, and of one being deleted.
PENDING = "PendingConfirmation"
DELETED = "Deleted"
MAX_TAGS = 50


def argument_spec() -> dict[str, Any]:
    subscription = dict(
        protocol=dict(type="str", required=True, choices=PROTOCOLS),
        endpoint=dict(type="str", required=True),
    )
    topic = dict(
        name=dict(type="str", required=True),
        display_name=dict(type="str"),
        tags=dict(type="dict"),
        subscriptions=dict(type="list", elements="dict", options=subscription),
    )
    return dict(
        topics=dict(type="list", elements="dict", options=topic, required=True),
        account_id=dict(type="str"),
        purge_subscriptions=dict(type="bool", default=True),
        purge_tags=dict(type="bool", default=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def canonical_endpoint(protocol: str, endpoint: str) -> str:
    """The endpoint as SNS stores it: a phone number without its separators."""
    return re.sub(r"[\s().-]", "", endpoint) if protocol == "sms" else endpoint


def key_of(protocol: str, endpoint: str) -> str:
    return f"{protocol}:{endpoint}"


def tag_problems(tags: dict[str, Any]) -> list[str]:
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(f"tags: at most {MAX_TAGS}, not {len(tags)}")
    for raw_key, value in tags.items():
        key = to_text(raw_key)
        if not 1 <= len(key) <= 128:
            problems.append(f"tags: key {key!r} must be 1 to 128 characters")
        if key.startswith("aws:"):
            problems.append(f"tags: key {key!r} starts with aws:, which AWS reserves")
        if value is None or isinstance(value, (dict, list)):
            problems.append(f"tags.{key} must be a string")
        elif len(to_text(value)) > 256:
            problems.append(f"tags.{key} must be at most 256 characters")
    return problems


def subscription_problems(subscriptions: list[dict[str, str]]) -> tuple[list[str], list[str]]:
    """The subscriptions as C(protocol:endpoint) keys, and what is wrong with them."""
    keys, problems = [], []
    for index, subscription in enumerate(subscriptions):
        protocol = subscription["protocol"]
        endpoint = canonical_endpoint(protocol, subscription["endpoint"])
        pattern, text = ENDPOINTS[protocol]
        if not pattern.fullmatch(endpoint):
            problems.append(f"subscriptions[{index}].endpoint {subscription['endpoint']!r} is not {text}")
        keys.append(key_of(protocol, endpoint))
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        problems.append(f"subscriptions lists {', '.join(repeated)} twice")
    return keys, problems


def check_input(module: AnsibleAWSModule) -> list[dict[str, Any]]:
    """The topics with their wanted fields; fails, before any AWS call, with every problem in one message."""
    params = module.params
    problems, wanted = [], []
    for index, topic in enumerate(params["topics"]):
        name = topic["name"]
        found = []
        if not NAME.fullmatch(name):
            found.append(
                "name must be 1 to 256 characters from A-Z, a-z, 0-9, '_' and '-'"
                + (" (FIFO topics are not managed)" if name.endswith(".fifo") else "")
            )
        keys = None
        if params["state"] == "present":
            if topic["display_name"] is not None and len(topic["display_name"]) > 100:
                found.append(f"display_name must be at most 100 characters, not {len(topic['display_name'])}")
            if topic["tags"] is not None:
                found += tag_problems(topic["tags"])
            if topic["subscriptions"] is not None:
                keys, wrong = subscription_problems(topic["subscriptions"])
                found += wrong
        problems += [f"topics[{index}] ({name}): {problem}" for problem in found]
        tags = topic["tags"]
        wanted.append(
            {
                "name": name,
                "display_name": topic["display_name"],
                "tags": None if tags is None else {to_text(k): to_text(v) for k, v in tags.items()},
                "subscriptions": keys,
            }
        )
    names = [topic["name"] for topic in wanted]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"topics names the same topic twice: {', '.join(repeated)}")
    if params["account_id"] is not None and not ACCOUNT.fullmatch(params["account_id"]):
        problems.append(f"account_id must be 12 digits, not {params['account_id']!r}")
    if not module.region:
        problems.append("no AWS region given (region, AWS_REGION or the AWS config)")
    if problems:
        module.fail_json(msg="Cannot manage the SNS topics: " + "; ".join(problems) + ". Nothing was changed.")
    return wanted


# --- Reading -------------------------------------------------------------------------------------


def account_of(module: AnsibleAWSModule) -> str:
    """O(account_id), or the credentials' account from one GetCallerIdentity."""
    if module.params["account_id"]:
        return module.params["account_id"]
    sts = module.client("sts", retry_decorator=jittered_backoff())
    try:
        return sts.get_caller_identity(aws_retry=True)["Account"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg="Failed to read the account of the credentials (sts:GetCallerIdentity)")


def read_attributes(module: AnsibleAWSModule, client: Any, name: str, arn: str) -> dict[str, str] | None:
    """The topic's attributes; None when it does not exist."""
    try:
        return client.get_topic_attributes(TopicArn=arn, aws_retry=True)["Attributes"]
    except is_boto3_error_code("NotFound"):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read the attributes of SNS topic '{name}' ({arn})")


def read_subscriptions(module: AnsibleAWSModule, client: Any, name: str, arn: str) -> dict[str, str]:
    """The topic's subscriptions, C(protocol:endpoint) -> subscription ARN (or PendingConfirmation)."""
    found: dict[str, str] = {}
    request = {"TopicArn": arn}
    while True:
        try:
            page = client.list_subscriptions_by_topic(**request, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to list the subscriptions of SNS topic '{name}'")
        for subscription in page.get("Subscriptions", []):
            if subscription["SubscriptionArn"] == DELETED:
                continue  # on its way out: as good as gone
            protocol = subscription["Protocol"]
            found[key_of(protocol, canonical_endpoint(protocol, subscription["Endpoint"]))] = subscription[
                "SubscriptionArn"
            ]
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def read_tags(module: AnsibleAWSModule, client: Any, name: str, arn: str) -> dict[str, str]:
    try:
        tags = client.list_tags_for_resource(ResourceArn=arn, aws_retry=True).get("Tags", [])
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the tags of SNS topic '{name}'")
    return boto3_tag_list_to_ansible_dict(tags)


# --- Writing -------------------------------------------------------------------------------------


def create_topic(module: AnsibleAWSModule, client: Any, topic: dict[str, Any], arn: str) -> None:
    params: dict[str, Any] = {"Name": topic["name"]}
    if topic["display_name"]:
        params["Attributes"] = {"DisplayName": topic["display_name"]}
    if topic["tags"]:
        params["Tags"] = ansible_dict_to_boto3_tag_list(topic["tags"])
    try:
        made = client.create_topic(**params, aws_retry=True)["TopicArn"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to create SNS topic '{topic['name']}'")
    if made != arn:
        module.fail_json(
            msg=f"SNS topic '{topic['name']}' was created as {made}, not {arn}: account_id "
            f"{module.params['account_id']} is not the account of the credentials"
        )


def subscribe(module: AnsibleAWSModule, client: Any, name: str, arn: str, key: str) -> bool:
    """Subscribe the endpoint of `key`; whether it awaits confirmation."""
    protocol, endpoint = key.split(":", 1)
    try:
        answer = client.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to subscribe {key} to SNS topic '{name}'")
    return answer.get("SubscriptionArn") == "pending confirmation"


def unsubscribe(module: AnsibleAWSModule, client: Any, name: str, key: str, subscription_arn: str) -> None:
    try:
        client.unsubscribe(SubscriptionArn=subscription_arn, aws_retry=True)
    except is_boto3_error_code("NotFound"):
        pass  # gone meanwhile
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to unsubscribe {key} from SNS topic '{name}'")


def write_changes(module: AnsibleAWSModule, client: Any, plan: dict[str, Any]) -> None:
    """Apply the plan of an existing topic (plan_topic)."""
    name, arn = plan["name"], plan["arn"]
    try:
        if "display_name" in plan["changes"]:
            client.set_topic_attributes(
                TopicArn=arn, AttributeName="DisplayName", AttributeValue=plan["display_name"], aws_retry=True
            )
        if plan["tags_to_unset"]:
            client.untag_resource(ResourceArn=arn, TagKeys=plan["tags_to_unset"], aws_retry=True)
        if plan["tags_to_set"]:
            client.tag_resource(
                ResourceArn=arn, Tags=ansible_dict_to_boto3_tag_list(plan["tags_to_set"]), aws_retry=True
            )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update SNS topic '{name}'")
    for key in plan["unsubscribed"]:
        unsubscribe(module, client, name, key, plan["existing"][key])


# --- The run -------------------------------------------------------------------------------------


def plan_topic(module: AnsibleAWSModule, client: Any, topic: dict[str, Any], arn: str) -> dict[str, Any]:
    """What to do for one topic of O(topics) with state=present, and its view before and after."""
    name = topic["name"]
    attributes = read_attributes(module, client, name, arn)
    exists = attributes is not None
    plan: dict[str, Any] = {
        "name": name,
        "arn": arn,
        "create": not exists,
        "display_name": topic["display_name"],
        "tags": topic["tags"],
        "tags_to_set": {},
        "tags_to_unset": [],
        "existing": {},
        "subscribed": [],
        "unsubscribed": [],
        "pending": [],
        "changes": [],
    }
    before: dict[str, Any] = {"display_name": attributes.get("DisplayName", "")} if exists else {}
    after: dict[str, Any] = {"display_name": topic["display_name"] or ""}
    if exists and topic["display_name"] is None:
        after["display_name"] = before["display_name"]
    if exists and after["display_name"] != before["display_name"]:
        plan["changes"].append("display_name")
    if not exists and topic["display_name"]:
        plan["changes"].append("display_name")

    if topic["tags"] is not None:
        current = read_tags(module, client, name, arn) if exists else {}
        params = {"tags": topic["tags"], "purge_tags": module.params["purge_tags"]}
        after["tags"] = desired_tags(params, current)
        if exists:
            before["tags"] = current
            plan["tags_to_set"], plan["tags_to_unset"] = compare_aws_tags(current, topic["tags"], params["purge_tags"])
        if after["tags"] != current:
            plan["changes"].append("tags")

    if topic["subscriptions"] is not None:
        existing = read_subscriptions(module, client, name, arn) if exists else {}
        plan["existing"] = existing
        wanted = topic["subscriptions"]
        plan["subscribed"] = [key for key in wanted if key not in existing]
        plan["pending"] = sorted(key for key, sub_arn in existing.items() if sub_arn == PENDING)
        if module.params["purge_subscriptions"]:
            plan["unsubscribed"] = sorted(
                key for key, sub_arn in existing.items() if key not in wanted and sub_arn != PENDING
            )
            for key in plan["pending"]:
                if key not in wanted:
                    module.warn(
                        f"SNS topic '{name}': {key} is no longer listed but still awaits confirmation; SNS cannot "
                        "unsubscribe it. SNS deletes it 48 hours after it was made unless it is confirmed; if it "
                        "is confirmed meanwhile, the next run unsubscribes it."
                    )
        if exists:
            before["subscriptions"] = sorted(existing)
        after["subscriptions"] = sorted(set(existing) - set(plan["unsubscribed"]) | set(plan["subscribed"]))
        if plan["subscribed"] or plan["unsubscribed"]:
            plan["changes"].append("subscriptions")

    plan["before"], plan["after"] = before, after
    return plan


def apply_present(module: AnsibleAWSModule, client: Any, plan: dict[str, Any], topic: dict[str, Any]) -> None:
    if module.check_mode:
        return
    if plan["create"]:
        create_topic(module, client, topic, plan["arn"])
    else:
        write_changes(module, client, plan)
    for key in plan["subscribed"]:
        if subscribe(module, client, plan["name"], plan["arn"], key):
            plan["pending"] = sorted({*plan["pending"], key})


def result_of(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "arn": plan["arn"],
        "created": plan["create"],
        "deleted": False,
        "changed": plan["create"] or bool(plan["changes"]),
        "changes": plan["changes"],
        "subscribed": plan["subscribed"],
        "unsubscribed": plan["unsubscribed"],
        "pending": plan["pending"],
    }


def run_present(module: AnsibleAWSModule, client: Any, topics: list[dict], arns: dict[str, str]) -> dict[str, Any]:
    results, before, after = {}, {}, {}
    for topic in topics:
        name = topic["name"]
        plan = plan_topic(module, client, topic, arns[name])
        apply_present(module, client, plan, topic)
        results[name] = result_of(plan)
        if plan["before"]:
            before[name] = plan["before"]
        after[name] = plan["after"]
    return {"topics": results, "diff": {"before": before, "after": after}}


def run_absent(module: AnsibleAWSModule, client: Any, topics: list[dict], arns: dict[str, str]) -> dict[str, Any]:
    results, before = {}, {}
    for topic in topics:
        name, arn = topic["name"], arns[topic["name"]]
        attributes = read_attributes(module, client, name, arn)
        if attributes is not None:
            before[name] = {"display_name": attributes.get("DisplayName", "")}
            if not module.check_mode:
                try:
                    client.delete_topic(TopicArn=arn, aws_retry=True)
                except (BotoCoreError, ClientError) as e:
                    module.fail_json_aws(e, msg=f"Failed to delete SNS topic '{name}'")
        gone = attributes is not None
        results[name] = {
            "arn": arn,
            "created": False,
            "deleted": gone,
            "changed": gone,
            "changes": [],
            "subscribed": [],
            "unsubscribed": [],
            "pending": [],
        }
    return {"topics": results, "diff": {"before": before, "after": {}}}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    # Refuse bad input before any AWS call.
    topics = check_input(module)
    if not topics:
        module.exit_json(changed=False, topics={})

    client = module.client("sns", retry_decorator=jittered_backoff())
    prefix = f"arn:{client.meta.partition}:sns:{module.region}:{account_of(module)}"
    arns = {topic["name"]: f"{prefix}:{topic['name']}" for topic in topics}
    if module.params["state"] == "present":
        result = run_present(module, client, topics, arns)
    else:
        result = run_absent(module, client, topics, arns)
    result["changed"] = any(entry["changed"] for entry in result["topics"].values())
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
