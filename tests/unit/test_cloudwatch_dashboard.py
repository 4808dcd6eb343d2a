"""library/cloudwatch_dashboard.py against a moto server, through the real `ansible` CLI.

What the dashboards really hold is read with boto3 from the emulator (GetDashboard, ListDashboards).

moto 5.2.5 validates nothing about a dashboard body: PutDashboard stores any text that parses as JSON
(even `[]` or `{"widgets": "x"}`), always answers with no DashboardValidationMessages, and refuses only
text that is not JSON (InvalidParameterInput), which the module never sends. It accepts any dashboard name
too. So the refusal of a body and the warnings are tested in-process with a stub client, not against moto.
A missing dashboard is `ResourceNotFound` for both GetDashboard and DeleteDashboards, as in AWS.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import run_module
from botocore.exceptions import ClientError
from emulator import Emulator, endpoint_env, free_port

MODULE = "cloudwatch_dashboard"
NAME = "airflow"
ARN = f"arn:aws:cloudwatch::123456789012:dashboard/{NAME}"
BODY = {
    "widgets": [
        {
            "type": "text",
            "x": 0,
            "y": 0,
            "width": 24,
            "height": 2,
            "properties": {"markdown": "Made by Ansible (airflow-ecs)"},
        },
        {
            "type": "metric",
            "x": 0,
            "y": 2,
            "width": 12,
            "height": 6,
            "properties": {
                "region": "us-east-1",
                "title": "Scheduler CPU",
                "metrics": [["AWS/ECS", "CPUUtilization", "ClusterName", "airflow", "ServiceName", "scheduler"]],
            },
        },
    ]
}


def in_aws(emulator: Emulator) -> dict[str, Any]:
    """Every dashboard the emulator holds, by name, with its body parsed."""
    cloudwatch = emulator.client("cloudwatch")
    names = [entry["DashboardName"] for entry in cloudwatch.list_dashboards()["DashboardEntries"]]
    return {name: json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"]) for name in names}


def reordered(value: Any) -> Any:
    """The same JSON value with the keys of every object in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(value)}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def with_title(title: str) -> dict[str, Any]:
    """BODY with another title on the metric widget."""
    body = copy.deepcopy(BODY)
    body["widgets"][1]["properties"]["title"] = title
    return body


def test_create_then_nothing_to_do(clean_emulator: Emulator) -> None:
    # A neighbour whose name starts with the wanted one: it must not be touched.
    clean_emulator.client("cloudwatch").put_dashboard(DashboardName=f"{NAME}-old", DashboardBody='{"widgets": []}')
    env = clean_emulator.env()

    created = run_module(MODULE, {"name": NAME, "body": BODY}, env=env)
    assert created["changed"] is True, created
    assert created["dashboard"] == {"name": NAME, "arn": ARN, "body": BODY}
    assert created["validation_messages"] == []
    assert "diff" not in created
    assert in_aws(clean_emulator) == {NAME: BODY, f"{NAME}-old": {"widgets": []}}
    stored = clean_emulator.client("cloudwatch").get_dashboard(DashboardName=NAME)["DashboardBody"]
    assert stored == json.dumps(BODY, sort_keys=True)

    again = run_module(MODULE, {"name": NAME, "body": BODY}, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["dashboard"] == created["dashboard"]
    assert again["diff"] == {"before": BODY, "after": BODY}


def test_key_order_and_whitespace_do_not_count(clean_emulator: Emulator) -> None:
    """A body stored with other key order and indentation (as the console saves it) is the same body."""
    clean_emulator.client("cloudwatch").put_dashboard(
        DashboardName=NAME, DashboardBody=json.dumps(reordered(BODY), indent=4)
    )
    env = clean_emulator.env()
    assert list(reordered(BODY)["widgets"][0]) != list(BODY["widgets"][0])

    same = run_module(MODULE, {"name": NAME, "body": BODY}, env=env)
    assert same["changed"] is False, same
    assert same["dashboard"] == {"name": NAME, "arn": ARN, "body": BODY}

    same_reordered = run_module(MODULE, {"name": NAME, "body": reordered(BODY)}, env=env)
    assert same_reordered["changed"] is False, same_reordered
    stored = clean_emulator.client("cloudwatch").get_dashboard(DashboardName=NAME)["DashboardBody"]
    assert stored == json.dumps(reordered(BODY), indent=4)  # not rewritten


def test_changed_widget_is_written(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"name": NAME, "body": BODY}, env=env)
    renamed = with_title("Scheduler CPU (%)")

    changed = run_module(MODULE, {"name": NAME, "body": renamed}, env=env, diff=True)
    assert changed["changed"] is True, changed
    assert changed["dashboard"] == {"name": NAME, "arn": ARN, "body": renamed}
    assert changed["diff"] == {"before": BODY, "after": renamed}
    assert in_aws(clean_emulator) == {NAME: renamed}

    assert run_module(MODULE, {"name": NAME, "body": renamed}, env=env)["changed"] is False

    one_widget = {"widgets": BODY["widgets"][:1]}  # the whole body is replaced: the metric widget goes
    dropped = run_module(MODULE, {"name": NAME, "body": one_widget}, env=env)
    assert dropped["changed"] is True, dropped
    assert in_aws(clean_emulator) == {NAME: one_widget}


def test_check_mode_changes_nothing(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()

    planned = run_module(MODULE, {"name": NAME, "body": BODY}, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["dashboard"] == {"name": NAME, "arn": None, "body": BODY}
    assert planned["diff"] == {"before": {}, "after": BODY}
    assert in_aws(clean_emulator) == {}

    run_module(MODULE, {"name": NAME, "body": BODY}, env=env)
    renamed = with_title("Scheduler CPU (%)")
    planned = run_module(MODULE, {"name": NAME, "body": renamed}, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["dashboard"] == {"name": NAME, "arn": ARN, "body": renamed}
    assert planned["diff"] == {"before": BODY, "after": renamed}
    assert in_aws(clean_emulator) == {NAME: BODY}


def test_absent_deletes_only_the_named_dashboard(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"name": NAME, "body": BODY}, env=env)
    clean_emulator.client("cloudwatch").put_dashboard(DashboardName=f"{NAME}-old", DashboardBody='{"widgets": []}')
    absent = {"name": NAME, "state": "absent"}
    gone = {"name": NAME, "arn": None, "body": {}}

    planned = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["dashboard"] == gone
    assert planned["diff"] == {"before": BODY, "after": {}}
    assert sorted(in_aws(clean_emulator)) == [NAME, f"{NAME}-old"]

    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert deleted["dashboard"] == gone
    assert list(in_aws(clean_emulator)) == [f"{NAME}-old"]

    again = run_module(MODULE, absent, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["diff"] == {"before": {}, "after": {}}
    assert list(in_aws(clean_emulator)) == [f"{NAME}-old"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "air flow", "body": BODY}, "Invalid dashboard name 'air flow'. A name is 1 to 255 characters"),
        ({"name": "a" * 256, "state": "absent"}, "Invalid dashboard name 'aaaa"),
        ({"name": "airflow/prod", "body": BODY}, "Invalid dashboard name 'airflow/prod'"),
        ({"name": NAME}, "state is present but all of the following are missing: body"),
        ({"name": NAME, "body": "not json"}, "argument 'body' is of type str and we were unable to convert to dict"),
    ],
)
def test_bad_input_is_refused_before_any_call(emulator: Emulator, args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    dead = endpoint_env(f"http://127.0.0.1:{free_port()}")
    result = run_module(MODULE, args, env=dead)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert result.get("changed", False) is False


# --- What moto cannot show: CloudWatch refusing a body, or accepting it with warnings ----------------


class ModuleFailed(Exception):
    pass


class StubModule:
    def __init__(self, body: dict[str, Any]) -> None:
        self.params = {"name": NAME, "body": body, "state": "present"}
        self.check_mode = False
        self.warnings: list[str] = []

    def fail_json(self, **kwargs: Any) -> None:
        raise ModuleFailed(kwargs["msg"])

    def fail_json_aws(self, exception: Exception, msg: str) -> None:
        raise ModuleFailed(f"{msg}: {exception}")

    def warn(self, warning: str) -> None:
        self.warnings.append(warning)


class StubClient:
    """GetDashboard finds nothing until PutDashboard stored a body; PutDashboard answers `put_answer`."""

    def __init__(self, put_answer: dict[str, Any] | ClientError) -> None:
        self.put_answer = put_answer
        self.stored: str | None = None

    def get_dashboard(self, DashboardName: str, aws_retry: bool) -> dict[str, Any]:
        if self.stored is None:
            error = {"Error": {"Code": "ResourceNotFound", "Message": "Dashboard does not exist"}}
            raise ClientError(error, "GetDashboard")
        return {"DashboardName": DashboardName, "DashboardArn": ARN, "DashboardBody": self.stored}

    def put_dashboard(self, DashboardName: str, DashboardBody: str, aws_retry: bool) -> dict[str, Any]:
        if isinstance(self.put_answer, ClientError):
            raise self.put_answer
        self.stored = DashboardBody
        return self.put_answer


WARNING = {"DataPath": "/widgets/1/properties/metrics/0", "Message": "Should NOT have more than 4 items"}


def test_refused_body_fails_with_the_validation_messages(load_library_module: Callable[[str], ModuleType]) -> None:
    ensure_present = load_library_module(MODULE).ensure_present
    refusal = ClientError(
        {
            "Error": {"Code": "InvalidParameterInput", "Message": "The dashboard body is invalid"},
            "dashboardValidationMessages": [WARNING, {"DataPath": "/widgets/0", "Message": "Should have type"}],
        },
        "PutDashboard",
    )
    client = StubClient(refusal)
    with pytest.raises(ModuleFailed) as failed:
        ensure_present(StubModule(BODY), client, NAME)
    assert str(failed.value).startswith(
        "CloudWatch refused the body of dashboard 'airflow': /widgets/1/properties/metrics/0: Should NOT have more "
        "than 4 items; /widgets/0: Should have type: "
    )
    assert client.stored is None


def test_warnings_of_an_accepted_body_are_returned(load_library_module: Callable[[str], ModuleType]) -> None:
    ensure_present = load_library_module(MODULE).ensure_present
    module = StubModule(BODY)
    result = ensure_present(module, StubClient({"DashboardValidationMessages": [WARNING]}), NAME)
    assert result["changed"] is True
    assert result["dashboard"] == {"name": NAME, "arn": ARN, "body": BODY}
    assert result["validation_messages"] == [
        {"data_path": "/widgets/1/properties/metrics/0", "message": "Should NOT have more than 4 items"}
    ]
    assert module.warnings == [
        "CloudWatch dashboard 'airflow': /widgets/1/properties/metrics/0: Should NOT have more than 4 items"
    ]


def test_messages_for_a_body_that_was_not_stored_are_errors(
    load_library_module: Callable[[str], ModuleType],
) -> None:
    """The API gives no level per message: when the body was not stored, its messages were errors."""
    ensure_present = load_library_module(MODULE).ensure_present
    client = StubClient({"DashboardValidationMessages": [WARNING]})
    client.put_dashboard = lambda **_: {"DashboardValidationMessages": [WARNING]}  # answers, stores nothing
    client.stored = json.dumps({"widgets": []})
    with pytest.raises(ModuleFailed, match=r"'airflow' does not hold the body just written \(validation messages: "):
        ensure_present(StubModule(BODY), client, NAME)
