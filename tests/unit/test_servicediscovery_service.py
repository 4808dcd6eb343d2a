"""library/servicediscovery_service.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

from ansible_runner import run_module
from emulator import Emulator, endpoint_env

from embedded_aws.weather import Weather, WeatherProxy

MODULE = "servicediscovery_service"


def services(emulator: Emulator) -> list[dict]:
    return emulator.client("servicediscovery").list_services()["Services"]


def test_service_lifecycle_story(clean_emulator: Emulator, namespace_id: str) -> None:
    env = clean_emulator.env()
    client = clean_emulator.client("servicediscovery")
    args = {
        "name": "api-server",
        "namespace_name": "airflow.local",
        "description": "first",
        "health_check_custom_config": {"failure_threshold": 1},
        "tags": {"stack": "airflow", "team": "data"},
    }

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["diff"]["after"]["dns_records"] == [{"type": "A", "ttl": 10}]
    assert services(clean_emulator) == []

    created = run_module(MODULE, args, env=env)
    assert created["changed"] is True, created
    service = created["service"]
    assert service["id"].startswith("srv-")
    assert (service["name"], service["namespace_id"], service["description"]) == ("api-server", namespace_id, "first")
    assert service["dns_config"] == {"routing_policy": "MULTIVALUE", "dns_records": [{"type": "A", "ttl": 10}]}
    assert service["health_check_custom_config"] == {"failure_threshold": 1}
    assert (service["instance_count"], service["tags"]) == (0, {"stack": "airflow", "team": "data"})

    by_id = {key: value for key, value in args.items() if key != "namespace_name"} | {"namespace_id": namespace_id}
    again = run_module(MODULE, by_id, env=env)
    assert again["changed"] is False, again
    assert again["service"]["arn"] == service["arn"]

    update = {**by_id, "description": "second", "dns_records": [{"type": "A", "ttl": 30}], "tags": {"stack": "airflow"}}
    updated = run_module(MODULE, update, env=env, diff=True)
    assert updated["changed"] is True, updated
    assert updated["diff"]["before"]["dns_records"] == [{"type": "A", "ttl": 10}]
    assert updated["diff"]["after"]["dns_records"] == [{"type": "A", "ttl": 30}]
    current = client.get_service(Id=service["id"])["Service"]
    assert (current["Description"], current["DnsConfig"]["DnsRecords"]) == ("second", [{"Type": "A", "TTL": 30}])
    assert current["DnsConfig"]["RoutingPolicy"] == "MULTIVALUE"
    assert updated["service"]["tags"] == {"stack": "airflow"}

    recreate = run_module(MODULE, {**update, "routing_policy": "WEIGHTED", "dns_records": [{"type": "SRV"}]}, env=env)
    assert recreate.get("failed") is True
    assert "cannot be updated in place" in recreate["msg"]
    assert "routing_policy is MULTIVALUE, task wants WEIGHTED" in recreate["msg"]
    assert "DNS record types are ['A'], task wants ['SRV']" in recreate["msg"]

    # Deleting: a registered instance blocks it unless force=true, which deregisters it first.
    client.register_instance(
        ServiceId=service["id"], InstanceId="task-1", Attributes={"AWS_INSTANCE_IPV4": "10.20.0.5"}
    )
    absent = {"name": "api-server", "namespace_id": namespace_id, "state": "absent"}
    refused = run_module(MODULE, absent, env=env)
    assert refused.get("failed") is True
    assert "still has 1 registered instance(s): task-1" in refused["msg"]
    assert "force=true" in refused["msg"]

    planned_delete = run_module(MODULE, {**absent, "force": True}, env=env, check=True)
    assert planned_delete["changed"] is True, planned_delete
    assert len(client.list_instances(ServiceId=service["id"])["Instances"]) == 1

    deleted = run_module(MODULE, {**absent, "force": True}, env=env)
    assert deleted["changed"] is True, deleted
    assert deleted["service"] == {}
    assert services(clean_emulator) == []

    assert run_module(MODULE, absent, env=env)["changed"] is False


def test_unknown_namespace_name_is_a_clear_error_except_in_check_mode(clean_emulator: Emulator) -> None:
    args = {"name": "api-server", "namespace_name": "nowhere.local"}
    result = run_module(MODULE, args, env=clean_emulator.env())
    assert result.get("failed") is True
    assert result["msg"] == "Cloud Map namespace 'nowhere.local' (namespace_name) does not exist; create it first"

    planned = run_module(MODULE, args, env=clean_emulator.env(), check=True)
    assert planned["changed"] is True, planned
    assert "assuming an earlier task creates it" in planned["warnings"][0]


def test_a_rerun_reads_one_list_and_the_tags_and_never_takes_another_namespaces_service(
    clean_emulator: Emulator, namespace_id: str
) -> None:
    """By namespace_id, a no-op is ListServices (filtered by NAMESPACE_ID) and ListTagsForResource; the
    instance count comes from the summary. A same-named service of another namespace is not this one."""
    client = clean_emulator.client("servicediscovery")
    other_vpc = clean_emulator.client("ec2").create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    operation = client.create_private_dns_namespace(Name="other.local", Vpc=other_vpc)["OperationId"]
    other = client.get_operation(OperationId=operation)["Operation"]["Targets"]["NAMESPACE"]
    client.create_service(Name="api-server", NamespaceId=other, DnsConfig={"DnsRecords": [{"Type": "SRV", "TTL": 5}]})
    args = {"name": "api-server", "namespace_id": namespace_id, "tags": {"stack": "airflow"}}
    created = run_module(MODULE, args, env=clean_emulator.env())
    assert created["changed"] is True and created["service"]["namespace_id"] == namespace_id, created
    client.register_instance(
        ServiceId=created["service"]["id"], InstanceId="task-1", Attributes={"AWS_INSTANCE_IPV4": "10.20.0.5"}
    )

    weather = Weather(latency_ms=0)
    proxy = WeatherProxy(clean_emulator.url, weather)
    try:
        again = run_module(MODULE, args, env=endpoint_env(proxy.url))
        calls = weather.stats()["calls"]
    finally:
        proxy.close()
    assert again["changed"] is False, again
    assert (again["service"]["id"], again["service"]["instance_count"]) == (created["service"]["id"], 1)
    assert calls == {"servicediscovery ListServices": 1, "servicediscovery ListTagsForResource": 1}

    missing = run_module(MODULE, {**args, "namespace_id": "ns-doesnotexist0000"}, env=clean_emulator.env())
    assert missing.get("failed") is True
    assert missing["msg"] == "Cloud Map namespace ns-doesnotexist0000 (namespace_id) does not exist; create it first"
