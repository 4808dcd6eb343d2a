"""library/cloudwatchlogs_log_groups.py against a moto server, through the real `ansible` CLI.

What the groups really look like is read with boto3 from the emulator, and the tags with the older
ListTagsLogGroup API, so the checks do not go through the APIs the module itself uses.

moto 5.2.5 quirks the tests live with: it accepts any retention value (AWS refuses the ones outside its
list), and DeleteLogGroup leaves the group's tags behind, so a group re-created under the same name in
the same emulator gets its old tags back. No test re-creates a deleted group.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_module, run_module_with_output
from emulator import Emulator, endpoint_env, free_port

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "cloudwatchlogs_log_groups"
PREFIX = "/ecs/airflow/"
NAMES = [f"{PREFIX}scheduler", f"{PREFIX}api-server", f"{PREFIX}worker"]  # not sorted: the order must be kept
TAGS = {"airflow-ecs:stack": "airflow", "team": "data"}
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def in_aws(emulator: Emulator, prefix: str = "/") -> dict[str, dict[str, Any]]:
    """Every group under `prefix` as the emulator holds it: retention (None = never expires) and tags."""
    logs = emulator.client("logs")
    groups = [g for page in logs.get_paginator("describe_log_groups").paginate() for g in page["logGroups"]]
    return {
        g["logGroupName"]: {
            "retention": g.get("retentionInDays"),
            "tags": logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"],
        }
        for g in groups
        if g["logGroupName"].startswith(prefix)
    }


def tags_in_aws(emulator: Emulator) -> dict[str, dict[str, str]]:
    return {name: found["tags"] for name, found in in_aws(emulator).items()}


def arn(name: str) -> str:
    return f"arn:aws:logs:us-east-1:123456789012:log-group:{name}"


def group(name: str, retention: int | None, tags: dict[str, str], kms: str | None = None) -> dict[str, Any]:
    return {"name": name, "arn": arn(name), "retention_in_days": retention, "kms_key_id": kms, "tags": tags}


def view(name: str, retention: int | None, tags: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "retention_in_days": retention, "tags": tags}


def test_create_then_nothing_to_do(clean_emulator: Emulator) -> None:
    logs = clean_emulator.client("logs")
    # Neighbours under the same prefix, one of them starting with a wanted name: none may be touched.
    logs.create_log_group(logGroupName=f"{PREFIX}worker-old", tags={"keep": "me"})
    logs.create_log_group(logGroupName=f"{PREFIX}flower")
    env = clean_emulator.env()
    args = {"names": [*NAMES, NAMES[0]], "retention": 30, "tags": {**TAGS, "number": 4711}}
    tags = {**TAGS, "number": "4711"}

    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    assert created["log_groups"] == [group(name, 30, tags) for name in NAMES]
    assert "diff" not in created
    assert in_aws(clean_emulator) == {
        **{name: {"retention": 30, "tags": tags} for name in NAMES},
        f"{PREFIX}worker-old": {"retention": None, "tags": {"keep": "me"}},
        f"{PREFIX}flower": {"retention": None, "tags": {}},
    }

    weather = Weather(latency_ms=0)
    proxy = WeatherProxy(clean_emulator.url, weather)
    try:
        again = run_module(MODULE, args, env=endpoint_env(proxy.url), diff=True)
        calls = weather.stats()["calls"]
    finally:
        proxy.close()
    assert again["changed"] is False, again
    assert again["log_groups"] == created["log_groups"]
    assert again["diff"]["before"] == again["diff"]["after"]
    # The tags of every group from one tagging-index call, not one ListTagsForResource per group.
    assert calls == {"logs DescribeLogGroups": 1, "tagging GetResources": 1}, calls


def test_check_mode_on_a_fresh_emulator_creates_nothing(clean_emulator: Emulator) -> None:
    args = {"names": NAMES, "retention": 14, "tags": TAGS, "kms_key_id": KMS_KEY}
    planned, _ = run_module_with_output(MODULE, args, env=clean_emulator.env(), check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["log_groups"] == [{**group(name, 14, TAGS, KMS_KEY), "arn": None} for name in NAMES]
    assert planned["diff"] == {
        "before": {"log_groups": []},
        "after": {"log_groups": [view(n, 14, TAGS) for n in NAMES]},
    }
    assert in_aws(clean_emulator) == {}

    created = run_module(MODULE, args, env=clean_emulator.env())
    assert created["log_groups"] == [group(name, 14, TAGS, KMS_KEY) for name in NAMES]
    described = clean_emulator.client("logs").describe_log_groups(logGroupNamePrefix=PREFIX)["logGroups"]
    assert {g["logGroupName"]: g.get("kmsKeyId") for g in described} == dict.fromkeys(NAMES, KMS_KEY)


def test_retention_change_keep_and_purge(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"names": NAMES, "retention": 30}, env=env)
    clean_emulator.client("logs").put_retention_policy(logGroupName=NAMES[1], retentionInDays=7)

    planned = run_module(MODULE, {"names": NAMES, "retention": 90}, env=env, check=True)
    assert planned["changed"] is True, planned
    assert [g["retention_in_days"] for g in planned["log_groups"]] == [90, 90, 90]
    assert {name: g["retention"] for name, g in in_aws(clean_emulator).items()} == {
        NAMES[0]: 30,
        NAMES[1]: 7,
        NAMES[2]: 30,
    }

    changed = run_module(MODULE, {"names": NAMES, "retention": 90}, env=env, diff=True)
    assert changed["changed"] is True, changed
    assert changed["diff"]["before"]["log_groups"] == [
        view(NAMES[0], 30, {}),
        view(NAMES[1], 7, {}),
        view(NAMES[2], 30, {}),
    ]
    assert changed["diff"]["after"]["log_groups"] == [view(name, 90, {}) for name in NAMES]
    assert {name: g["retention"] for name, g in in_aws(clean_emulator).items()} == dict.fromkeys(NAMES, 90)

    assert run_module(MODULE, {"names": NAMES, "retention": 90}, env=env)["changed"] is False
    left_alone = run_module(MODULE, {"names": NAMES}, env=env)  # no retention: leave it as it is
    assert left_alone["changed"] is False, left_alone
    assert [g["retention_in_days"] for g in left_alone["log_groups"]] == [90, 90, 90]

    purge = {"names": NAMES[:2], "purge_retention_policy": True}
    purged = run_module(MODULE, purge, env=env)
    assert purged["changed"] is True, purged
    assert [g["retention_in_days"] for g in purged["log_groups"]] == [None, None]
    assert {name: g["retention"] for name, g in in_aws(clean_emulator).items()} == {
        NAMES[0]: None,
        NAMES[1]: None,
        NAMES[2]: 90,
    }
    assert run_module(MODULE, purge, env=env)["changed"] is False


def test_tags_are_merged_purged_or_left_alone(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    names = NAMES[:2]
    run_module(MODULE, {"names": names, "tags": {"a": "1", "b": "2"}}, env=env)
    # A group tagged by hand differs from its sibling: only it changes.
    clean_emulator.client("logs").tag_log_group(logGroupName=names[1], tags={"c": "3"})

    merged = run_module(MODULE, {"names": names, "tags": {"a": "1", "c": "3"}, "purge_tags": False}, env=env)
    assert merged["changed"] is True, merged
    assert tags_in_aws(clean_emulator) == {name: {"a": "1", "b": "2", "c": "3"} for name in names}

    planned = run_module(MODULE, {"names": names, "tags": {"a": "x"}}, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["diff"]["before"]["log_groups"] == [view(n, None, {"a": "1", "b": "2", "c": "3"}) for n in names]
    assert planned["diff"]["after"]["log_groups"] == [view(n, None, {"a": "x"}) for n in names]
    assert in_aws(clean_emulator)[names[0]]["tags"] == {"a": "1", "b": "2", "c": "3"}

    purged = run_module(MODULE, {"names": names, "tags": {"a": "x"}}, env=env)
    assert purged["changed"] is True, purged
    assert [g["tags"] for g in purged["log_groups"]] == [{"a": "x"}, {"a": "x"}]
    assert tags_in_aws(clean_emulator) == {name: {"a": "x"} for name in names}

    untouched = run_module(MODULE, {"names": names, "retention": 7}, env=env)  # no tags option
    assert untouched["changed"] is True, untouched
    assert [g["tags"] for g in untouched["log_groups"]] == [{"a": "x"}, {"a": "x"}]
    assert tags_in_aws(clean_emulator) == {name: {"a": "x"} for name in names}

    emptied = run_module(MODULE, {"names": names, "resource_tags": {}}, env=env)
    assert emptied["changed"] is True, emptied
    assert tags_in_aws(clean_emulator) == {name: {} for name in names}
    assert run_module(MODULE, {"names": names, "tags": {}}, env=env)["changed"] is False


def test_more_groups_than_one_page(clean_emulator: Emulator) -> None:
    """DescribeLogGroups returns 50 groups a page: groups on the second page must be found."""
    logs = clean_emulator.client("logs")
    for number in range(60):
        name = f"{PREFIX}g{number:02}"
        logs.create_log_group(logGroupName=name, tags=TAGS)
        logs.put_retention_policy(logGroupName=name, retentionInDays=30)
    names = [f"{PREFIX}g59", f"{PREFIX}g00", f"{PREFIX}g55"]
    result = run_module(MODULE, {"names": names, "retention": 30, "tags": TAGS}, env=clean_emulator.env())
    assert result["changed"] is False, result
    assert result["log_groups"] == [group(name, 30, TAGS) for name in names]


def test_absent_deletes_only_the_named_groups(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"names": NAMES, "retention": 30, "tags": TAGS}, env=env)
    clean_emulator.client("logs").create_log_group(logGroupName=f"{PREFIX}scheduler-old")
    absent = {"names": [*NAMES, f"{PREFIX}never-created"], "state": "absent"}

    planned = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["diff"] == {
        "before": {"log_groups": [view(n, 30, TAGS) for n in NAMES]},
        "after": {"log_groups": []},
    }
    assert sorted(in_aws(clean_emulator)) == sorted([*NAMES, f"{PREFIX}scheduler-old"])

    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert deleted["log_groups"] == []
    assert list(in_aws(clean_emulator)) == [f"{PREFIX}scheduler-old"]

    again = run_module(MODULE, absent, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["diff"] == {"before": {"log_groups": []}, "after": {"log_groups": []}}
    assert list(in_aws(clean_emulator)) == [f"{PREFIX}scheduler-old"]


def test_kms_key_of_an_existing_group_is_not_changed(clean_emulator: Emulator) -> None:
    clean_emulator.client("logs").create_log_group(logGroupName=NAMES[0])
    result = run_module(MODULE, {"names": NAMES[:1], "kms_key_id": KMS_KEY}, env=clean_emulator.env())
    assert result["changed"] is False, result
    assert result["log_groups"][0]["kms_key_id"] is None
    assert any("sets the key only when it creates a group" in warning for warning in result["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"retention": 10}, "retention must be one of the values CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30"),
        ({"retention": 0}, "(got 0). To keep the events forever"),
        ({"retention": 3650, "state": "absent"}, "retention must be one of the values CloudWatch Logs accepts"),
        ({"names": ["/ecs/airflow/ok", "/ecs/air flow"]}, "Invalid log group name(s): '/ecs/air flow'"),
        ({"names": [""]}, "Invalid log group name(s): ''"),
        ({"retention": 30, "purge_retention_policy": True}, "mutually exclusive: retention|purge_retention_policy"),
    ],
)
def test_bad_input_is_refused_before_any_call(emulator: Emulator, args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    dead = endpoint_env(f"http://127.0.0.1:{free_port()}")
    result = run_module(MODULE, {"names": NAMES, **args}, env=dead)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert result.get("changed", False) is False


def test_bad_retention_creates_nothing(clean_emulator: Emulator) -> None:
    result = run_module(MODULE, {"names": NAMES, "retention": 31}, env=clean_emulator.env())
    assert result.get("failed") is True, result
    assert "(got 31)" in result["msg"]
    assert in_aws(clean_emulator) == {}


def test_no_names_is_a_no_op_without_any_call(emulator: Emulator) -> None:
    dead = endpoint_env(f"http://127.0.0.1:{free_port()}")
    result = run_module(MODULE, {"names": [], "retention": 30, "tags": TAGS}, env=dead)
    assert result.get("failed") is not True, result
    assert (result["changed"], result["log_groups"]) == (False, [])


def test_the_tag_index_only_confirms_and_the_groups_own_tags_decide(load_library_module) -> None:
    """The tagging index can lag a change by minutes: what it lists is taken only when it is as wanted."""
    confirmed_tags = load_library_module(MODULE).confirmed_tags

    arn = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/airflow/worker"
    wanted = {"team": "data"}

    def read() -> dict[str, str]:
        return {"team": "data"}  # what ListTagsForResource answers

    stale = {arn: {"team": "old"}}
    assert confirmed_tags(stale, arn, lambda tags: tags == wanted, read) == {"team": "data"}
    assert confirmed_tags({}, arn, lambda tags: tags == wanted, read) == {"team": "data"}
    listed = {arn: {"team": "data"}}
    assert confirmed_tags(listed, arn, lambda tags: tags == wanted, lambda: pytest.fail("read needlessly")) == wanted
