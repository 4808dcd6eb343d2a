"""library/servicediscovery_namespace.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from ansible_runner import run_module
from emulator import Emulator, endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "servicediscovery_namespace"
NAME = "airflow.local"


def private_namespaces(emulator: Emulator) -> list[dict]:
    return emulator.client("servicediscovery").list_namespaces()["Namespaces"]


def tags_of(emulator: Emulator, arn: str) -> dict[str, str]:
    tags = emulator.client("servicediscovery").list_tags_for_resource(ResourceARN=arn)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def test_namespace_lifecycle_story(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    args = {"name": NAME, "vpc_id": vpc_id, "description": "first", "tags": {"stack": "airflow", "team": "data"}}

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["diff"]["after"]["name"] == NAME
    assert private_namespaces(clean_emulator) == []

    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    namespace = created["namespace"]
    assert namespace["id"].startswith("ns-")
    assert namespace["arn"].endswith(namespace["id"])
    assert (namespace["name"], namespace["type"], namespace["description"]) == (NAME, "DNS_PRIVATE", "first")
    assert namespace["properties"]["dns_properties"]["hosted_zone_id"]
    assert namespace["tags"] == {"stack": "airflow", "team": "data"}
    assert [ns["Id"] for ns in private_namespaces(clean_emulator)] == [namespace["id"]]

    weather = Weather(latency_ms=0)
    proxy = WeatherProxy(clean_emulator.url, weather)
    try:
        again = run_module(MODULE, args, env=endpoint_env(proxy.url))
        calls = weather.stats()["calls"]
    finally:
        proxy.close()
    assert again["changed"] is False, again
    assert again["namespace"]["id"] == namespace["id"]
    # The namespace from its ListNamespaces summary, its VPC from its hosted zone, then its tags.
    assert calls == {
        "servicediscovery ListNamespaces": 1,
        "route53 GET /{id}/hostedzone/{id}": 1,
        "servicediscovery ListTagsForResource": 1,
    }, calls

    update = {**args, "description": "second", "tags": {"stack": "airflow", "owner": "me"}}
    updated = run_module(MODULE, update, env=env, diff=True)
    assert updated["changed"] is True, updated
    assert updated["diff"]["before"]["description"] == "first"
    assert updated["diff"]["after"] == {
        "name": NAME,
        "description": "second",
        "tags": {"stack": "airflow", "owner": "me"},
    }
    assert updated["namespace"]["description"] == "second"
    assert tags_of(clean_emulator, namespace["arn"]) == {"stack": "airflow", "owner": "me"}

    absent = {"name": NAME, "state": "absent"}
    planned_delete = run_module(MODULE, absent, env=env, check=True)
    assert planned_delete["changed"] is True, planned_delete
    assert len(private_namespaces(clean_emulator)) == 1

    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert deleted["namespace"] == {}
    assert private_namespaces(clean_emulator) == []

    assert run_module(MODULE, absent, env=env)["changed"] is False


def test_present_without_vpc_id_is_refused(clean_emulator: Emulator) -> None:
    result = run_module(MODULE, {"name": NAME}, env=clean_emulator.env())
    assert result.get("failed") is True
    assert "vpc_id" in result["msg"]
    assert private_namespaces(clean_emulator) == []


def test_a_namespace_is_never_moved_to_another_vpc(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    assert run_module(MODULE, {"name": NAME, "vpc_id": vpc_id}, env=env)["changed"] is True
    other = clean_emulator.client("ec2").create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    refused = run_module(MODULE, {"name": NAME, "vpc_id": other}, env=env)
    assert refused.get("failed") is True
    assert f"is bound to VPC {vpc_id}, not {other}; a namespace cannot move between VPCs" in refused["msg"]
    assert len(private_namespaces(clean_emulator)) == 1


def test_delete_with_services_needs_force_and_empty_services(clean_emulator: Emulator, namespace_id: str) -> None:
    env = clean_emulator.env()
    client = clean_emulator.client("servicediscovery")
    idle = client.create_service(Name="idle", NamespaceId=namespace_id)["Service"]["Id"]
    busy = client.create_service(Name="busy", NamespaceId=namespace_id)["Service"]["Id"]
    client.register_instance(ServiceId=busy, InstanceId="task-1", Attributes={"AWS_INSTANCE_IPV4": "10.20.0.5"})
    absent = {"name": NAME, "state": "absent"}

    refused = run_module(MODULE, absent, env=env)
    assert refused.get("failed") is True
    assert "still has 2 service(s): busy, idle" in refused["msg"]
    assert "force=true" in refused["msg"]

    forced_busy = run_module(MODULE, {**absent, "force": True}, env=env)
    assert forced_busy.get("failed") is True
    assert "service(s) busy still have registered instances" in forced_busy["msg"]
    assert {s["Id"] for s in client.list_services()["Services"]} == {idle, busy}  # nothing deleted

    client.deregister_instance(ServiceId=busy, InstanceId="task-1")
    forced = run_module(MODULE, {**absent, "force": True}, env=env)
    assert forced["changed"] is True, forced
    assert client.list_services()["Services"] == []
    assert private_namespaces(clean_emulator) == []


# --- Operation polling, with a stub client: moto finishes every Cloud Map operation at once ------


class ModuleFailed(Exception):
    pass


class StubModule:
    def __init__(self, wait_timeout: int) -> None:
        self.params = {"wait_timeout": wait_timeout}

    def fail_json(self, **kwargs: object) -> None:
        raise ModuleFailed(kwargs["msg"])


class StubClient:
    def __init__(self, *statuses: str) -> None:
        self.statuses = list(statuses)

    def get_operation(self, OperationId: str, aws_retry: bool) -> dict:
        status = self.statuses.pop(0)
        error = {"ErrorCode": "CANNOT_CREATE_HOSTED_ZONE", "ErrorMessage": "zone exists"} if status == "FAIL" else {}
        return {"Operation": {"Id": OperationId, "Status": status, **error}}


@pytest.mark.parametrize("library_module", ["servicediscovery_namespace", "servicediscovery_service"])
def test_operation_wait_succeeds_or_fails_clearly(
    load_library_module: Callable[[str], ModuleType], library_module: str
) -> None:
    wait = load_library_module(library_module).wait_for_operation
    assert wait(StubModule(0), StubClient("SUCCESS"), "op-1", "create namespace 'x'")["Status"] == "SUCCESS"
    with pytest.raises(ModuleFailed, match=r"op-2 failed to create namespace 'x': CANNOT_CREATE_HOSTED_ZONE: zone"):
        wait(StubModule(60), StubClient("FAIL"), "op-2", "create namespace 'x'")
    with pytest.raises(ModuleFailed, match=r"Timed out after 0 s .* op-3 to delete .* \(last status PENDING\)"):
        wait(StubModule(0), StubClient("PENDING"), "op-3", "delete namespace 'x'")
