"""library/sns_topics.py against a moto server, through the real `ansible` CLI.

The module's AWS calls go through the weather proxy (embedded_aws/weather.py, no latency, no faults), which
counts every request it forwards by operation: that count is what the module really sent, measured on the
wire. What the topics hold is read with boto3 straight from the emulator (not counted).

moto 5.2.5 confirms every subscription at once, e-mail ones included: ListSubscriptionsByTopic never shows
the `PendingConfirmation` ARN that AWS shows for an address that has not clicked its link, and every
subscription can be unsubscribed. So unsubscribing a removed address is tested against moto (what AWS does
with a confirmed one), and the handling of pending confirmations against a listing shaped like AWS's, with the
module's own functions in this process (test_pending_confirmations_*). moto's GetTopicAttributes answers
`NotFound` for a missing topic, as AWS does, and reports 0 subscriptions in its counts whatever the topic has.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import run_counted, run_module
from emulator import Emulator, endpoint_env, free_port

from embedded_aws.weather import WeatherProxy

MODULE = "sns_topics"
ACCOUNT = "123456789012"
NAME = "airflow-alarms"
ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:{NAME}"
TAGS = {"airflow-ecs:stack": "airflow", "owner": "data"}
ONCALL, OPS, NEW = "oncall@example.com", "ops@example.com", "new@example.com"


def emails(*addresses: str) -> list[dict[str, str]]:
    return [{"protocol": "email", "endpoint": address} for address in addresses]


def topic(**changes: Any) -> dict[str, Any]:
    """The monitoring role's topic, as it passes it."""
    return {
        "name": NAME,
        "display_name": "airflow alarms",
        "tags": TAGS,
        "subscriptions": emails(ONCALL, OPS),
    } | changes


ARGS = {"topics": [topic()], "account_id": ACCOUNT}
GET = "sns GetTopicAttributes"
LIST_SUBSCRIPTIONS = "sns ListSubscriptionsByTopic"
LIST_TAGS = "sns ListTagsForResource"
READS = {GET: 1, LIST_SUBSCRIPTIONS: 1, LIST_TAGS: 1}


def run(proxy: WeatherProxy, args: dict[str, Any], **kwargs: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """One module run through the proxy: its result and the AWS calls it made, by operation."""
    return run_counted(MODULE, proxy, args, **kwargs)


def in_aws(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """Every topic the emulator holds, by name: display name, tags and subscribed endpoints (read uncounted)."""
    sns = emulator.client("sns")
    found = {}
    for listed in sns.list_topics()["Topics"]:
        arn = listed["TopicArn"]
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
        found[arn.rsplit(":", 1)[1]] = {
            "display_name": sns.get_topic_attributes(TopicArn=arn)["Attributes"]["DisplayName"],
            "tags": {tag["Key"]: tag["Value"] for tag in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]},
            "subscriptions": sorted(f"{s['Protocol']}:{s['Endpoint']}" for s in subscriptions),
        }
    return found


def make_topic(emulator: Emulator, name: str = NAME, addresses: tuple[str, ...] = (ONCALL, OPS)) -> str:
    """The topic as a deploy leaves it, made with boto3 (moto confirms the subscriptions at once)."""
    sns = emulator.client("sns")
    arn = sns.create_topic(
        Name=name,
        Attributes={"DisplayName": "airflow alarms"},
        Tags=[{"Key": key, "Value": value} for key, value in TAGS.items()],
    )["TopicArn"]
    for address in addresses:
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=address)
    return arn


WANTED = {NAME: {"display_name": "airflow alarms", "tags": TAGS, "subscriptions": [f"email:{ONCALL}", f"email:{OPS}"]}}


def unchanged(**fields: Any) -> dict[str, Any]:
    return {
        "arn": ARN,
        "created": False,
        "deleted": False,
        "changed": False,
        "changes": [],
        "subscribed": [],
        "unsubscribed": [],
        "pending": [],
    } | fields


def test_create_with_two_emails_then_a_rerun_only_reads(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    created, calls = run(proxy, {"topics": [topic()]})  # no account_id: STS tells it
    assert created["changed"] is True, created
    assert created["topics"] == {
        NAME: unchanged(
            created=True,
            changed=True,
            changes=["display_name", "tags", "subscriptions"],
            subscribed=[f"email:{ONCALL}", f"email:{OPS}"],
        )
    }
    # The ARN from the account, one read that answers NotFound, the topic with its name and tags, each address.
    assert calls == {"sts GetCallerIdentity": 1, GET: 1, "sns CreateTopic": 1, "sns Subscribe": 2}
    assert in_aws(clean_emulator) == WANTED

    again, calls = run(proxy, ARGS, diff=True)
    assert again["changed"] is False, again
    assert again["topics"] == {NAME: unchanged()}
    assert calls == READS  # with account_id: the topic, its subscriptions, its tags; no ListTopics
    assert (
        again["diff"]["before"]
        == again["diff"]["after"]
        == {
            NAME: {"display_name": "airflow alarms", "tags": TAGS, "subscriptions": [f"email:{ONCALL}", f"email:{OPS}"]}
        }
    )

    again, calls = run(proxy, {"topics": [topic()]})
    assert again["changed"] is False, again
    assert calls == {"sts GetCallerIdentity": 1, **READS}


def test_check_mode_writes_nothing(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    planned, calls = run(proxy, ARGS, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["topics"][NAME]["created"] is True
    assert planned["topics"][NAME]["arn"] == ARN  # known before the topic exists: the alarms can name it
    assert planned["topics"][NAME]["subscribed"] == [f"email:{ONCALL}", f"email:{OPS}"]
    assert planned["diff"] == {"before": {}, "after": WANTED}
    assert calls == {GET: 1}
    assert in_aws(clean_emulator) == {}

    make_topic(clean_emulator)
    drifted = topic(display_name="on-call", tags={"owner": "ops"}, subscriptions=emails(ONCALL, NEW))
    planned, calls = run(proxy, {**ARGS, "topics": [drifted]}, check=True, diff=True)
    assert planned["topics"] == {
        NAME: unchanged(
            changed=True,
            changes=["display_name", "tags", "subscriptions"],
            subscribed=[f"email:{NEW}"],
            unsubscribed=[f"email:{OPS}"],
        )
    }, planned
    assert planned["diff"]["after"][NAME] == {
        "display_name": "on-call",
        "tags": {"owner": "ops"},
        "subscriptions": [f"email:{NEW}", f"email:{ONCALL}"],
    }
    assert calls == READS
    assert in_aws(clean_emulator) == WANTED


def test_drifted_tags_and_display_name_are_repaired(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    make_topic(clean_emulator)
    sns = clean_emulator.client("sns")
    sns.untag_resource(ResourceArn=ARN, TagKeys=["owner"])
    sns.tag_resource(ResourceArn=ARN, Tags=[{"Key": "added", "Value": "by hand"}])
    sns.set_topic_attributes(TopicArn=ARN, AttributeName="DisplayName", AttributeValue="renamed")

    repaired, calls = run(proxy, ARGS, diff=True)
    assert repaired["topics"] == {NAME: unchanged(changed=True, changes=["display_name", "tags"])}, repaired
    assert calls == {
        **READS,
        "sns SetTopicAttributes": 1,
        "sns UntagResource": 1,
        "sns TagResource": 1,
    }
    assert repaired["diff"]["before"][NAME]["tags"] == {"airflow-ecs:stack": "airflow", "added": "by hand"}
    assert repaired["diff"]["after"][NAME]["tags"] == TAGS
    assert in_aws(clean_emulator) == WANTED

    # Fields not given are neither read nor changed: one call.
    untouched, calls = run(proxy, {**ARGS, "topics": [{"name": NAME}]})
    assert untouched["changed"] is False, untouched
    assert calls == {GET: 1}
    assert in_aws(clean_emulator) == WANTED


def test_a_topic_deleted_out_of_band_is_recreated(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    make_topic(clean_emulator)
    clean_emulator.client("sns").delete_topic(TopicArn=ARN)

    recreated, calls = run(proxy, ARGS)
    assert recreated["topics"][NAME]["created"] is True, recreated
    assert recreated["topics"][NAME]["arn"] == ARN
    assert calls == {GET: 1, "sns CreateTopic": 1, "sns Subscribe": 2}
    assert in_aws(clean_emulator) == WANTED


def test_an_address_removed_from_the_list_is_unsubscribed(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    make_topic(clean_emulator)  # moto confirmed both addresses: they have subscription ARNs

    result, calls = run(proxy, {**ARGS, "topics": [topic(subscriptions=emails(ONCALL, NEW))]}, diff=True)
    assert result["topics"] == {
        NAME: unchanged(
            changed=True, changes=["subscriptions"], subscribed=[f"email:{NEW}"], unsubscribed=[f"email:{OPS}"]
        )
    }, result
    assert calls == {**READS, "sns Subscribe": 1, "sns Unsubscribe": 1}
    assert in_aws(clean_emulator)[NAME]["subscriptions"] == [f"email:{NEW}", f"email:{ONCALL}"]

    none, calls = run(proxy, {**ARGS, "topics": [topic(subscriptions=[])]})  # monitoring_alarm_emails: []
    assert none["topics"][NAME]["unsubscribed"] == [f"email:{NEW}", f"email:{ONCALL}"], none
    assert calls == {**READS, "sns Unsubscribe": 2}
    assert in_aws(clean_emulator)[NAME]["subscriptions"] == []

    kept, calls = run(proxy, {**ARGS, "topics": [topic(subscriptions=[])], "purge_subscriptions": False})
    assert kept["changed"] is False, kept
    assert calls == READS


def test_absent_deletes_only_the_named_topic(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    make_topic(clean_emulator)
    neighbours = ["airflow-alarms-old", "other-alarms"]  # same prefix, or another stack's: never touched
    for neighbour in neighbours:
        make_topic(clean_emulator, neighbour, addresses=())
    absent = {"topics": [{"name": NAME}], "account_id": ACCOUNT, "state": "absent"}

    planned, calls = run(proxy, absent, check=True, diff=True)
    assert planned["topics"] == {NAME: unchanged(changed=True, deleted=True)}, planned
    assert planned["diff"] == {"before": {NAME: {"display_name": "airflow alarms"}}, "after": {}}
    assert calls == {GET: 1}
    assert sorted(in_aws(clean_emulator)) == sorted([NAME, *neighbours])

    deleted, calls = run(proxy, absent)
    assert deleted["changed"] is True, deleted
    assert calls == {GET: 1, "sns DeleteTopic": 1}  # DeleteTopic takes the subscriptions with it
    assert sorted(in_aws(clean_emulator)) == sorted(neighbours)
    assert clean_emulator.client("sns").list_subscriptions()["Subscriptions"] == []

    again, calls = run(proxy, absent)
    assert again["changed"] is False, again
    assert again["topics"] == {NAME: unchanged()}
    assert calls == {GET: 1}


def test_an_account_id_that_is_not_the_callers_fails_the_run(proxy: WeatherProxy, clean_emulator: Emulator) -> None:
    result, calls = run(proxy, {**ARGS, "account_id": "210987654321"})
    assert result.get("failed") is True, result
    assert result["msg"] == (
        f"SNS topic '{NAME}' was created as {ARN}, not arn:aws:sns:us-east-1:210987654321:{NAME}: "
        "account_id 210987654321 is not the account of the credentials"
    )
    assert calls == {GET: 1, "sns CreateTopic": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"topics": [topic(name="airflow alarms")]}, "topics[0] (airflow alarms): name must be 1 to 256 characters"),
        ({"topics": [topic(), topic()]}, f"topics names the same topic twice: {NAME}"),
        (
            {"topics": [topic(subscriptions=emails(ONCALL, "ops.example.com"))]},
            f"topics[0] ({NAME}): subscriptions[1].endpoint 'ops.example.com' is not an e-mail address",
        ),
        (
            {"topics": [topic(subscriptions=[{"protocol": "firehose", "endpoint": "x"}])]},
            "value of protocol must be one of",
        ),
    ],
)
def test_bad_input_is_refused_before_any_call(emulator: Emulator, args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    result = run_module(MODULE, args, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert "Could not connect" not in result["msg"]
    assert result.get("changed", False) is False


def test_bad_input_lists_every_problem_in_one_message(emulator: Emulator) -> None:
    args = {
        "topics": [
            topic(display_name="x" * 101, tags={"aws:owner": "x"}),
            topic(name="alarms.fifo", subscriptions=emails(OPS, OPS)),
            topic(name="b", subscriptions=[{"protocol": "sms", "endpoint": "555-0100"}]),
        ],
        "account_id": "1234",
    }
    result = run_module(MODULE, args, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result.get("failed") is True, result
    assert result["msg"] == (
        f"Cannot manage the SNS topics: topics[0] ({NAME}): display_name must be at most 100 characters, not 101; "
        f"topics[0] ({NAME}): tags: key 'aws:owner' starts with aws:, which AWS reserves; "
        "topics[1] (alarms.fifo): name must be 1 to 256 characters from A-Z, a-z, 0-9, '_' and '-' "
        "(FIFO topics are not managed); "
        f"topics[1] (alarms.fifo): subscriptions lists email:{OPS} twice; "
        "topics[2] (b): subscriptions[0].endpoint '555-0100' is not a phone number in E.164 form such as "
        "+15555550100; account_id must be 12 digits, not '1234'. Nothing was changed."
    )


# --- Pending confirmations, as AWS lists them (moto confirms at once) ----------------------------------


class FakeModule:
    """What the module's functions use of AnsibleAWSModule."""

    def __init__(self, check_mode: bool = False) -> None:
        self.params = {"purge_subscriptions": True, "purge_tags": True, "account_id": ACCOUNT}
        self.check_mode = check_mode
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def fail_json(self, **kwargs: Any) -> None:
        raise AssertionError(kwargs)

    def fail_json_aws(self, error: Exception, **kwargs: Any) -> None:
        raise AssertionError(error, kwargs)


class FakeSns:
    """An SNS client answering like AWS for a topic whose listed address has not confirmed yet."""

    def __init__(self, subscriptions: list[dict[str, str]]) -> None:
        self.subscriptions = subscriptions
        self.calls: list[str] = []

    def get_topic_attributes(self, **_: Any) -> dict:
        self.calls.append("GetTopicAttributes")
        return {"Attributes": {"TopicArn": ARN, "DisplayName": "airflow alarms", "SubscriptionsPending": "2"}}

    def list_subscriptions_by_topic(self, **_: Any) -> dict:
        self.calls.append("ListSubscriptionsByTopic")
        return {"Subscriptions": self.subscriptions}

    def list_tags_for_resource(self, **_: Any) -> dict:
        self.calls.append("ListTagsForResource")
        return {"Tags": [{"Key": key, "Value": value} for key, value in TAGS.items()]}

    def __getattr__(self, operation: str) -> Callable[..., dict]:  # any write
        def write(**kwargs: Any) -> dict:
            self.calls.append(operation)
            return {"SubscriptionArn": "pending confirmation"}

        return write


def listed(address: str, arn: str) -> dict[str, str]:
    return {"SubscriptionArn": arn, "Owner": ACCOUNT, "Protocol": "email", "Endpoint": address, "TopicArn": ARN}


def wanted(addresses: list[str]) -> dict[str, Any]:
    return {
        "name": NAME,
        "display_name": "airflow alarms",
        "tags": TAGS,
        "subscriptions": [f"email:{a}" for a in addresses],
    }


@pytest.fixture
def sns_topics(load_library_module: Callable[[str], ModuleType]) -> ModuleType:
    return load_library_module(MODULE)


def test_pending_confirmations_are_not_subscribed_again_nor_a_change(sns_topics: ModuleType) -> None:
    client = FakeSns([listed(ONCALL, "PendingConfirmation"), listed(OPS, f"{ARN}:1111")])
    module = FakeModule()
    result = sns_topics.run_present(module, client, [wanted([ONCALL, OPS])], {NAME: ARN})
    assert result["topics"][NAME] == unchanged(pending=[f"email:{ONCALL}"])
    assert client.calls == ["GetTopicAttributes", "ListTagsForResource", "ListSubscriptionsByTopic"]  # no write
    assert module.warnings == []
    assert result["diff"]["before"] == result["diff"]["after"]


def test_pending_confirmations_no_longer_listed_are_left_to_sns_with_a_warning(sns_topics: ModuleType) -> None:
    """AWS cannot unsubscribe a pending subscription: it has no ARN. SNS deletes it after 48 hours."""
    client = FakeSns([listed(ONCALL, "PendingConfirmation"), listed(OPS, f"{ARN}:1111")])
    module = FakeModule()
    result = sns_topics.run_present(module, client, [wanted([NEW])], {NAME: ARN})
    assert result["topics"][NAME] == unchanged(
        changed=True,
        changes=["subscriptions"],
        subscribed=[f"email:{NEW}"],
        unsubscribed=[f"email:{OPS}"],  # confirmed: removed
        pending=[f"email:{NEW}", f"email:{ONCALL}"],  # the old one stays pending; SNS answered the new one pending
    )
    assert client.calls[3:] == ["unsubscribe", "subscribe"]
    [warning] = module.warnings
    assert f"email:{ONCALL} is no longer listed but still awaits confirmation" in warning
    assert "48 hours" in warning
    assert result["diff"]["after"][NAME]["subscriptions"] == [f"email:{NEW}", f"email:{ONCALL}"]

    planned = FakeSns([listed(ONCALL, "PendingConfirmation")])
    result = sns_topics.run_present(FakeModule(check_mode=True), planned, [wanted([])], {NAME: ARN})
    assert result["topics"][NAME] == unchanged(pending=[f"email:{ONCALL}"])  # nothing SNS can do: no change
    assert planned.calls == ["GetTopicAttributes", "ListTagsForResource", "ListSubscriptionsByTopic"]
