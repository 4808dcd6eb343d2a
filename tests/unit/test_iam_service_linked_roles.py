"""library/iam_service_linked_roles.py against the emulator, its calls counted, and the emulator's new-account ECS.

In a new account ECS's first CreateCluster with capacity providers fails while ECS makes its service-linked
role (embedded_aws/service_linked_roles.py does as AWS does); the module makes the role first.
"""

from __future__ import annotations

import pytest
from ansible_runner import run_counted
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "iam_service_linked_roles"
ECS = {"services": ["ecs.amazonaws.com"]}
ROLE = "AWSServiceRoleForECS"
FARGATE = {"capacityProviders": ["FARGATE", "FARGATE_SPOT"]}


def ecs_roles(emulator: Emulator) -> list[tuple[str, str]]:
    roles = emulator.client("iam").list_roles(PathPrefix="/aws-service-role/ecs.amazonaws.com/")["Roles"]
    return [(role["RoleName"], role["Path"]) for role in roles]


def test_a_new_accounts_first_cluster_with_capacity_providers_fails_and_the_retry_works(clean_emulator: Emulator):
    ecs = clean_emulator.client("ecs")
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="Unable to assume the service linked role"):
        ecs.create_cluster(clusterName="first", **FARGATE)
    assert ecs_roles(clean_emulator) == [(ROLE, "/aws-service-role/ecs.amazonaws.com/")]  # ECS made it meanwhile
    assert (
        ecs.create_cluster(clusterName="first", **FARGATE)["cluster"]["capacityProviders"]
        == FARGATE["capacityProviders"]
    )


def test_check_mode_then_create_then_rerun_only_reads(proxy: WeatherProxy, clean_emulator: Emulator):
    planned, calls = run_counted(MODULE, proxy, ECS, check=True, diff=True)
    assert planned["changed"] is True and planned["roles"]["ecs.amazonaws.com"]["created"] is True, planned
    assert calls == {"iam GetRole": 1}
    assert ecs_roles(clean_emulator) == []

    created, calls = run_counted(MODULE, proxy, ECS)
    assert created["changed"] is True, created
    assert calls == {"iam GetRole": 1, "iam CreateServiceLinkedRole": 1}
    assert created["roles"]["ecs.amazonaws.com"]["arn"].endswith(f":role/aws-service-role/ecs.amazonaws.com/{ROLE}")
    assert ecs_roles(clean_emulator) == [(ROLE, "/aws-service-role/ecs.amazonaws.com/")]

    again, calls = run_counted(MODULE, proxy, ECS, check=True)
    assert again["changed"] is False and calls == {"iam GetRole": 1}, again
    # With the role in place the first cluster with capacity providers is created at once.
    clean_emulator.client("ecs").create_cluster(clusterName="first", **FARGATE)


def test_a_role_the_service_made_itself_is_no_change(proxy: WeatherProxy, clean_emulator: Emulator):
    clean_emulator.client("ecs").create_cluster(clusterName="plain")  # no capacity providers: ECS makes its role
    result, calls = run_counted(MODULE, proxy, ECS)
    assert result["changed"] is False and calls == {"iam GetRole": 1}, result


def test_a_service_without_a_known_role_name_is_refused_before_any_call(proxy: WeatherProxy, clean_emulator: Emulator):
    result, calls = run_counted(MODULE, proxy, {"services": ["ec2.amazonaws.com"]})
    assert result.get("failed") and "ecs.amazonaws.com" in result["msg"] and "ec2.amazonaws.com" in result["msg"]
    assert calls == {}
