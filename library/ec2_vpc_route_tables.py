#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several EC2 route tables of one VPC, with their routes, subnet associations and tags, in one run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ec2_vpc_route_tables
short_description: Manage several route tables of one VPC, their routes, subnets and tags, in one run
description:
  - Creates, updates or deletes a set of EC2 route tables of one VPC in a single module run, without the
    fixed sleeps of M(amazon.aws.ec2_vpc_route_table).
  - A table is found by its C(Name) tag (O(route_tables[].name)) among the route tables of the VPC, as
    M(amazon.aws.ec2_vpc_route_table) does with C(lookup=tag). Two tables of the VPC with the same name
    fail the run before anything is changed.
  - A run starts with one C(DescribeRouteTables) call for the whole VPC; when nothing differs that is the
    only API call.
  - With O(state=present) the missing tables are created with their tags (C(CreateRouteTable) with
    C(TagSpecifications)). Calls on a table created in the run are retried while EC2 does not know it
    yet (C(InvalidRouteTableID.NotFound)); there is no fixed sleep. Then the routes are created, replaced
    or deleted, the subnets associated (a subnet associated with another table of the VPC is moved with
    C(ReplaceRouteTableAssociation)), the subnet associations that are not listed removed, and the tags
    synced.
  - With O(state=absent) the tables named in O(route_tables) are deleted; their subnet and gateway
    associations are removed first. Tables that do not exist are ignored.
  - With O(purge_owned_by), the tables of the VPC that carry all its tags (the caller's ownership tags, such
    as the stack tag) and that O(route_tables) does not list are deleted too, with either state; with
    O(state=present) after the listed tables are in place (a subnet listed for one of them has been moved
    there first), with O(state=absent) along with the listed ones. A table without those tags is never
    deleted that way, not even an empty one.
  - The main route table of the VPC is never deleted.
author:
  - airflow-ecs project
options:
  vpc_id:
    description:
      - ID of the VPC of the route tables.
    type: str
    required: true
  route_tables:
    description:
      - The route tables, in the order RV(route_tables) is returned.
      - Names must be unique in the list, and a subnet may be listed for one table only.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Value of the C(Name) tag of the table; how the table is found.
        type: str
        required: true
      subnets:
        description:
          - IDs of the subnets the table is associated with. A subnet associated with another table of the
            VPC is moved to this one.
          - The table's other subnet associations are removed (the subnets fall back to the main table),
            except those of subnets listed for another table of O(route_tables), which are moved there.
          - When not given, the associations of the table are left alone.
        type: list
        elements: str
      routes:
        description:
          - The routes of the table, besides the local route(s) of the VPC.
          - Routes to other IPv4 or IPv6 CIDR blocks that are not listed are deleted, except propagated
            routes (C(EnableVgwRoutePropagation)). Routes to prefix lists (gateway VPC endpoints) are left
            alone; M(amazon.aws.ec2_vpc_endpoint) manages them.
          - A listed route whose destination exists with another target is replaced (C(ReplaceRoute)).
          - When not given, the routes of the table are left alone.
        type: list
        elements: dict
        suboptions:
          dest:
            description:
              - Destination IPv4 or IPv6 CIDR block.
            type: str
            required: true
          gateway_id:
            description:
              - ID of an internet gateway or virtual private gateway. An ID starting with C(nat-) is taken
                as O(route_tables[].routes[].nat_gateway_id).
            type: str
          nat_gateway_id:
            description:
              - ID of a NAT gateway.
            type: str
          transit_gateway_id:
            description:
              - ID of a transit gateway.
            type: str
          vpc_peering_connection_id:
            description:
              - ID of a VPC peering connection.
            type: str
          network_interface_id:
            description:
              - ID of a network interface.
            type: str
      tags:
        description:
          - Tags of the table, as a dict. C(Name) is always set from O(route_tables[].name).
          - When not given, the tags of an existing table other than C(Name) are left alone.
        type: dict
  purge_tags:
    description:
      - Remove the tags of a table that are not in its O(route_tables[].tags). Tags whose key starts with
        C(aws:) are never removed.
      - Has no effect on a table whose O(route_tables[].tags) is not given.
    type: bool
    default: true
  purge_owned_by:
    description:
      - The tags (key and value) that mark the route tables of the VPC the caller owns, for example
        the stack tag C(airflow-ecs:stack=airflow). Every route table of the VPC, other than the main one, that has
        all these tags and is not listed in O(route_tables) is deleted, its subnet and gateway associations
        removed first (its subnets fall back to the main table unless a listed table takes them).
      - A table that lacks one of these tags (made by another tool or by hand) is never deleted this way.
      - Must name at least one tag; V({}) fails the run, as it would own every table of the VPC.
      - When not given, no table is deleted besides, with O(state=absent), the listed ones.
    type: dict
  state:
    description:
      - Whether the tables should exist.
      - With V(absent) only O(route_tables[].name) is used.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; RV(route_tables) shows the tables
    as they would be, with a null RV(route_tables[].id) for a table that would be created. The diff has one
    entry per table (subnets, routes as readable strings, tags).
  - Gateway (edge) associations of a listed table are left alone with O(state=present).
  - Routes whose C(Origin) is missing (LocalStack leaves it out) are treated as created routes, except the
    local route (target C(local)).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: amazon.aws.ec2_vpc_route_table
"""

EXAMPLES = r"""
- name: Route the public subnets to the internet gateway and the private ones to the NAT gateway
  ec2_vpc_route_tables:
    vpc_id: "{{ vpc_id }}"
    route_tables:
      - name: airflow-public
        subnets: "{{ public_subnet_ids }}"
        routes:
          - {dest: 0.0.0.0/0, gateway_id: "{{ igw_id }}"}
        tags: {airflow-ecs:stack: airflow}
      - name: airflow-private-all
        subnets: "{{ private_subnet_ids }}"
        routes:
          - {dest: 0.0.0.0/0, nat_gateway_id: "{{ nat_id }}"}
        tags: {airflow-ecs:stack: airflow}
  register: __tables

- name: Keep only the public table of the stack (its other tables, such as airflow-private-all, go)
  ec2_vpc_route_tables:
    vpc_id: "{{ vpc_id }}"
    route_tables:
      - name: airflow-public
        subnets: "{{ public_subnet_ids }}"
        routes:
          - {dest: 0.0.0.0/0, gateway_id: "{{ igw_id }}"}
        tags: {airflow-ecs:stack: airflow}
    purge_owned_by:
      airflow-ecs:stack: airflow

- name: Delete every route table of the stack, even after a half-finished deploy (other tables stay)
  ec2_vpc_route_tables:
    vpc_id: "{{ vpc_id }}"
    purge_owned_by:
      airflow-ecs:stack: airflow
    state: absent
"""

RETURN = r"""
route_tables:
  description:
    - The tables of O(route_tables) in the order given, as they are after the run (in check mode, as they
      would be). Empty with O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: ID of the table; null in check mode for a table that would be created.
      type: str
      sample: rtb-0123456789abcdef0
    name:
      description: Name of the table.
      type: str
      sample: airflow-public
    subnets:
      description: IDs of the subnets associated with the table, sorted.
      type: list
      elements: str
      sample: [subnet-0123456789abcdef0]
    routes:
      description:
        - The routes to CIDR blocks other than the local and propagated ones, sorted by destination, each
          with its target under the option name that sets it.
      type: list
      elements: dict
      sample: [{dest: 0.0.0.0/0, gateway_id: igw-0123456789abcdef0}]
    tags:
      description: Tags of the table.
      type: dict
      sample: {Name: airflow-public, airflow-ecs:stack: airflow}
deleted:
  description:
    - The tables deleted (in check mode, that would be), as C(id) and C(name) (null for a table without a
      C(Name) tag); with O(state=absent) the listed ones, and with O(purge_owned_by) the owned ones not listed.
  returned: always
  type: list
  elements: dict
  sample: [{id: rtb-0123456789abcdef0, name: airflow-public}]
diff:
  description:
    - Per table name, its subnets, routes as strings and tags, before and after. A deleted table is only in
      C(before), under its name (its ID when it has no C(Name) tag).
  returned: in diff mode
  type: dict
  sample:
    before: {}
    after:
      airflow-public:
        subnets: [subnet-0123456789abcdef0]
        routes: ["0.0.0.0/0 -> igw-0123456789abcdef0"]
        tags: {Name: airflow-public}
"""

import contextlib
import ipaddress
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible.module_utils.ec2_batch import apply_tags, call, delete, describe_in_vpc, tags_of
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    compare_aws_tags,
)

# Route target option -> the key of CreateRoute/ReplaceRoute and of a described route.
TARGETS = {
    "gateway_id": "GatewayId",
    "nat_gateway_id": "NatGatewayId",
    "transit_gateway_id": "TransitGatewayId",
    "vpc_peering_connection_id": "VpcPeeringConnectionId",
    "network_interface_id": "NetworkInterfaceId",
}
OPTION_OF = {key: option for option, key in TARGETS.items()}
# Keys a described route may name its target with, most specific first (an instance route has both).
TARGET_KEYS = (
    "GatewayId",
    "NatGatewayId",
    "TransitGatewayId",
    "VpcPeeringConnectionId",
    "EgressOnlyInternetGatewayId",
    "CarrierGatewayId",
    "LocalGatewayId",
    "CoreNetworkArn",
    "NetworkInterfaceId",
    "InstanceId",
)
PROPAGATED = "EnableVgwRoutePropagation"
NOT_FOUND = ("InvalidRouteTableID.NotFound", "InvalidRouteTableId.NotFound")

Target = tuple[str, str]  # (AWS key, id), e.g. ("GatewayId", "igw-1")


def argument_spec() -> dict[str, Any]:
    route = dict(dest=dict(type="str", required=True), **{option: dict(type="str") for option in TARGETS})
    table = dict(
        name=dict(type="str", required=True),
        subnets=dict(type="list", elements="str"),
        routes=dict(
            type="list",
            elements="dict",
            options=route,
            mutually_exclusive=[list(TARGETS)],
            required_one_of=[list(TARGETS)],
        ),
        tags=dict(type="dict"),
    )
    return dict(
        vpc_id=dict(type="str", required=True),
        route_tables=dict(type="list", elements="dict", options=table, default=[]),
        purge_tags=dict(type="bool", default=True),
        purge_owned_by=dict(type="dict"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


# --- Reading -------------------------------------------------------------------------------------


def describe_tables(module: AnsibleAWSModule, client: Any, vpc_id: str) -> list[dict]:
    """Every route table of the VPC (one DescribeRouteTables)."""
    return describe_in_vpc(module, client, "describe_route_tables", "RouteTables", vpc_id, what="route tables")


def is_main(table: dict) -> bool:
    return any(association.get("Main") for association in table.get("Associations") or [])


def owner_tags(module: AnsibleAWSModule) -> dict[str, str] | None:
    """The tags that mark the caller's tables (purge_owned_by), values as strings; None when not given."""
    tags = module.params["purge_owned_by"]
    return None if tags is None else {key: str(value) for key, value in tags.items()}


def is_owned(table: dict, owner: dict[str, str]) -> bool:
    """Whether the table carries every owner tag; no table is owned by an empty set of tags."""
    tags = tags_of(table)
    return bool(owner) and all(tags.get(key) == value for key, value in owner.items())


def owned_unlisted(module: AnsibleAWSModule, tables: list[dict]) -> list[dict]:
    """The tables purge_owned_by deletes: not the main one, carrying every owner tag, not in route_tables."""
    owner = owner_tags(module)
    if owner is None:
        return []
    names = {spec["name"] for spec in module.params["route_tables"]}
    return [t for t in tables if not is_main(t) and tags_of(t).get("Name") not in names and is_owned(t, owner)]


def subnet_associations(table: dict) -> dict[str, str]:
    """Subnet id -> association id of the table's subnet associations."""
    return {
        a["SubnetId"]: a["RouteTableAssociationId"]
        for a in table.get("Associations") or []
        if a.get("SubnetId") and not a.get("Main") and a.get("AssociationState", {}).get("State") != "disassociated"
    }


def route_dest(route: dict) -> str | None:
    return route.get("DestinationCidrBlock") or route.get("DestinationIpv6CidrBlock")


def route_target(route: dict) -> Target:
    for key in TARGET_KEYS:
        if route.get(key):
            return key, route[key]
    return "?", "?"


def current_routes(table: dict) -> dict[str, Target]:
    """Destination -> target of the routes to CIDR blocks that the module manages (not local, not propagated)."""
    routes = {}
    for route in table.get("Routes") or []:
        dest = route_dest(route)
        if not dest or route.get("GatewayId") == "local" or route.get("Origin") == PROPAGATED:
            continue
        routes[dest] = route_target(route)
    return routes


def readable_routes(routes: dict[str, Target]) -> list[str]:
    return [f"{dest} -> {target[1]}" for dest, target in sorted(routes.items())]


def routes_view(routes: dict[str, Target]) -> list[dict]:
    return [{"dest": dest, OPTION_OF.get(key, key): value} for dest, (key, value) in sorted(routes.items())]


# --- present -------------------------------------------------------------------------------------


def desired_routes(module: AnsibleAWSModule, spec: dict) -> dict[str, Target] | None:
    if spec["routes"] is None:
        return None
    routes: dict[str, Target] = {}
    for index, route in enumerate(spec["routes"]):
        where = f"Route {index + 1} of route table '{spec['name']}'"
        try:
            dest = str(ipaddress.ip_network(route["dest"].strip()))
        except ValueError:
            module.fail_json(msg=f"{where}: destination {route['dest']!r} is not a CIDR block (with no host bits set)")
        if dest in routes:
            module.fail_json(msg=f"{where}: destination {dest} is listed twice")
        option = next(option for option in TARGETS if route[option])
        key = TARGETS[option]
        if key == "GatewayId" and route[option].startswith("nat-"):
            key = "NatGatewayId"
        routes[dest] = (key, route[option])
    return routes


def plan_subnets(
    spec: dict, before: dict[str, str], associated: dict[str, tuple[str, str]], wanted_by: dict[str, str]
) -> tuple[list[str], dict[str, str], dict[str, str], list[str]]:
    """Subnets to associate, to move here (-> their association), to disassociate, and the subnets after."""
    if spec["subnets"] is None:
        return [], {}, {}, sorted(before)
    associate, move = [], {}
    for subnet in dict.fromkeys(spec["subnets"]):
        if subnet in before:
            continue
        if subnet in associated:
            move[subnet] = associated[subnet][1]
        else:
            associate.append(subnet)
    # A subnet listed for another table is moved there, not disassociated.
    disassociate = {s: a for s, a in before.items() if s not in spec["subnets"] and s not in wanted_by}
    return associate, move, disassociate, sorted(set(spec["subnets"]))


def plan(module: AnsibleAWSModule, tables: list[dict]) -> list[dict]:
    """What to do for each listed table; fails before any change on ambiguous or contradictory input."""
    params = module.params
    by_name: dict[str, list[dict]] = {}
    for table in tables:
        name = tags_of(table).get("Name")
        if name is not None:
            by_name.setdefault(name, []).append(table)
    # Every subnet association of the VPC: subnet id -> (table id, association id).
    associated = {
        subnet: (table["RouteTableId"], association)
        for table in tables
        for subnet, association in subnet_associations(table).items()
    }
    wanted_by: dict[str, str] = {}
    for spec in params["route_tables"]:
        found = by_name.get(spec["name"], [])
        if len(found) > 1:
            ids = ", ".join(table["RouteTableId"] for table in found)
            module.fail_json(
                msg=f"VPC {params['vpc_id']} has {len(found)} route tables named '{spec['name']}' ({ids}): "
                "a name must identify one table. Nothing was changed."
            )
        for subnet in spec["subnets"] or []:
            if wanted_by.setdefault(subnet, spec["name"]) != spec["name"]:
                module.fail_json(
                    msg=f"Subnet {subnet} is listed for route tables '{wanted_by[subnet]}' and '{spec['name']}'; "
                    "a subnet has one route table. Nothing was changed."
                )

    steps = []
    for spec in params["route_tables"]:
        name = spec["name"]
        existing = by_name.get(name, [None])[0]
        table_id = existing["RouteTableId"] if existing else None

        routes_before = current_routes(existing) if existing else {}
        wanted_routes = desired_routes(module, spec)
        create, replace, delete = {}, {}, []
        if wanted_routes is not None:
            create = {d: t for d, t in wanted_routes.items() if d not in routes_before}
            replace = {d: t for d, t in wanted_routes.items() if d in routes_before and routes_before[d] != t}
            delete = [d for d in routes_before if d not in wanted_routes]
        routes_after = {d: t for d, t in routes_before.items() if d not in delete} | create | replace

        subnets_before = subnet_associations(existing) if existing else {}
        associate, move, disassociate, subnets_after = plan_subnets(spec, subnets_before, associated, wanted_by)

        tags_before = tags_of(existing) if existing else {}
        wanted_tags = None
        if spec["tags"] is not None:
            wanted_tags = {k: str(v) for k, v in spec["tags"].items()} | {"Name": name}
        elif not existing:
            wanted_tags = {"Name": name}
        to_set, to_unset = compare_aws_tags(tags_before, wanted_tags, params["purge_tags"]) if wanted_tags else ({}, [])
        tags_after = {k: v for k, v in tags_before.items() if k not in to_unset} | to_set

        steps.append(
            dict(
                spec=spec,
                existing=existing,
                table_id=table_id,
                routes_before=routes_before,
                routes_after=routes_after,
                create=create,
                replace=replace,
                delete=delete,
                subnets_before=sorted(subnets_before),
                subnets_after=subnets_after,
                associate=associate,
                move=move,
                disassociate=disassociate,
                tags_before=tags_before,
                tags_after=tags_after,
                to_set=to_set,
                to_unset=to_unset,
                changed=not existing
                or bool(create or replace or delete or associate or move or disassociate or to_set or to_unset),
            )
        )
    # A subnet moved away from a listed table no longer shows in that table's subnets.
    moved = {subnet for step in steps for subnet in step["move"]}
    for step in steps:
        if step["spec"]["subnets"] is None:
            step["subnets_after"] = [s for s in step["subnets_after"] if s not in moved]
    return steps


def create_table(module: AnsibleAWSModule, client: Any, step: dict) -> str:
    name = step["spec"]["name"]
    tags = ansible_dict_to_boto3_tag_list(step["tags_after"])
    response = call(
        module,
        client,
        "create_route_table",
        f"Failed to create route table '{name}' in VPC {module.params['vpc_id']}",
        VpcId=module.params["vpc_id"],
        TagSpecifications=[{"ResourceType": "route-table", "Tags": tags}],
    )
    return response["RouteTable"]["RouteTableId"]


def route_params(table_id: str, dest: str) -> dict[str, str]:
    key = "DestinationIpv6CidrBlock" if ":" in dest else "DestinationCidrBlock"
    return {"RouteTableId": table_id, key: dest}


def apply_routes(module: AnsibleAWSModule, client: Any, step: dict, new: bool) -> None:
    table_id, name = step["table_id"], step["spec"]["name"]
    for operation, verb, routes in (
        ("replace_route", "replace", step["replace"]),
        ("create_route", "create", step["create"]),
    ):
        for dest, (key, target) in routes.items():
            call(
                module,
                client,
                operation,
                f"Failed to {verb} the route {dest} -> {target} of route table '{name}' ({table_id})",
                retry_codes=NOT_FOUND if new else (),
                **route_params(table_id, dest),
                **{key: target},
            )
    for dest in step["delete"]:
        try:
            client.delete_route(aws_retry=True, **route_params(table_id, dest))
        except is_boto3_error_code("InvalidRoute.NotFound"):
            continue
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(
                e, msg=f"Failed to delete the route to {dest} of route table '{name}' ({table_id})", changed=True
            )


def apply_subnets(module: AnsibleAWSModule, client: Any, step: dict, new: bool) -> None:
    table_id, name = step["table_id"], step["spec"]["name"]
    for subnet, association in step["move"].items():
        call(
            module,
            client,
            "replace_route_table_association",
            f"Failed to move subnet {subnet} to route table '{name}' ({table_id})",
            retry_codes=NOT_FOUND if new else (),
            AssociationId=association,
            RouteTableId=table_id,
        )
    for subnet in step["associate"]:
        call(
            module,
            client,
            "associate_route_table",
            f"Failed to associate subnet {subnet} with route table '{name}' ({table_id})",
            retry_codes=NOT_FOUND if new else (),
            RouteTableId=table_id,
            SubnetId=subnet,
        )


def disassociate(module: AnsibleAWSModule, client: Any, table: str, subnets: dict[str, str | None]) -> None:
    for subnet, association in subnets.items():
        try:
            client.disassociate_route_table(aws_retry=True, AssociationId=association)
        except is_boto3_error_code("InvalidAssociationID.NotFound"):
            continue
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to disassociate {subnet} from route table {table}", changed=True)


def table_view(subnets: list[str], routes: dict[str, Target], tags: dict) -> dict:
    return {"subnets": sorted(subnets), "routes": readable_routes(routes), "tags": tags}


def ensure_present(module: AnsibleAWSModule, client: Any) -> dict:
    vpc_id = module.params["vpc_id"]
    tables = describe_tables(module, client, vpc_id)
    steps = plan(module, tables)
    purged = owned_unlisted(module, tables)
    changed = any(step["changed"] for step in steps) or bool(purged)

    after: dict[str, dict] = {}
    if changed and not module.check_mode:
        for step in steps:
            if not step["existing"]:
                step["table_id"] = create_table(module, client, step)
        for step in steps:
            new = not step["existing"]
            apply_routes(module, client, step, new)
            apply_subnets(module, client, step, new)
        for step in steps:  # after the moves, so that a subnet moved between listed tables is not dropped
            disassociate(module, client, f"'{step['spec']['name']}' ({step['table_id']})", step["disassociate"])
            if step["existing"]:
                what = f"route table '{step['spec']['name']}' ({step['table_id']})"
                apply_tags(module, client, step["table_id"], what, step)
        # Read again: the moves above gave the subnets of a purged table new associations (or took them away).
        after = {table["RouteTableId"]: table for table in describe_tables(module, client, vpc_id)}
        for table in purged:
            if table["RouteTableId"] in after:
                delete_table(module, client, after.pop(table["RouteTableId"]))

    result_tables, diff_before, diff_after = [], {}, {}
    for step in steps:
        name, table_id = step["spec"]["name"], step["table_id"]
        if step["existing"]:
            diff_before[name] = table_view(step["subnets_before"], step["routes_before"], step["tags_before"])
        table = after.get(table_id)  # a table just created may not be listed yet: then the plan says it
        if table is not None:
            subnets, routes, tags = sorted(subnet_associations(table)), current_routes(table), tags_of(table)
        else:
            subnets, routes, tags = step["subnets_after"], step["routes_after"], step["tags_after"]
        diff_after[name] = table_view(subnets, routes, tags)
        result_tables.append(
            {"id": table_id, "name": name, "subnets": subnets, "routes": routes_view(routes), "tags": tags}
        )
    result: dict[str, Any] = {"changed": changed, "route_tables": result_tables, "deleted": deleted_view(purged)}
    if module._diff:
        result["diff"] = {"before": diff_before | deleted_diff(purged), "after": diff_after}
    return result


# --- deleting: state=absent and purge_owned_by ---------------------------------------------------


def deleted_view(tables: list[dict]) -> list[dict]:
    return [{"id": t["RouteTableId"], "name": tags_of(t).get("Name")} for t in tables]


def deleted_diff(tables: list[dict]) -> dict[str, dict]:
    """The diff's `before` entries of deleted tables, by name (by ID for a table without a Name tag)."""
    return {
        tags_of(t).get("Name") or t["RouteTableId"]: table_view(
            list(subnet_associations(t)), current_routes(t), tags_of(t)
        )
        for t in tables
    }


def delete_table(module: AnsibleAWSModule, client: Any, table: dict) -> None:
    """Remove the table's subnet and gateway associations, then delete it."""
    vpc_id = module.params["vpc_id"]
    table_id = table["RouteTableId"]
    label = f"'{tags_of(table).get('Name', table_id)}' ({table_id})"
    associations = {
        a.get("SubnetId") or a.get("GatewayId") or a["RouteTableAssociationId"]: a["RouteTableAssociationId"]
        for a in table.get("Associations") or []
        if not a.get("Main") and a.get("AssociationState", {}).get("State") != "disassociated"
    }
    disassociate(module, client, label, associations)
    delete(
        module,
        client,
        "delete_route_table",
        f"route table {label} of VPC {vpc_id}",
        not_found=NOT_FOUND,
        in_use="something still depends on it (an association made since it was read, or a VPC endpoint)",
        changed=True,
        RouteTableId=table_id,
    )


def ensure_absent(module: AnsibleAWSModule, client: Any) -> dict:
    vpc_id = module.params["vpc_id"]
    names = {spec["name"] for spec in module.params["route_tables"]}
    tables = describe_tables(module, client, vpc_id)
    doomed = []
    for table in tables:
        name = tags_of(table).get("Name")
        if name not in names:
            continue
        if is_main(table):
            module.warn(
                f"Route table '{name}' ({table['RouteTableId']}) is the main route table of VPC "
                f"{vpc_id}: it is deleted with the VPC, not here. It was left as it is."
            )
            continue
        doomed.append(table)
    doomed += owned_unlisted(module, tables)

    result: dict[str, Any] = {"changed": bool(doomed), "route_tables": [], "deleted": deleted_view(doomed)}
    if module._diff:
        result["diff"] = {"before": deleted_diff(doomed), "after": {}}
    if not doomed or module.check_mode:
        return result
    for table in doomed:
        delete_table(module, client, table)
    return result


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    fail_on_repeats(module, "route_tables", "route table", [spec["name"] for spec in module.params["route_tables"]])
    if module.params["purge_owned_by"] == {}:
        module.fail_json(
            msg="purge_owned_by names no tag: give the tags that mark the route tables this run owns (such as "
            "the stack tag airflow-ecs:stack); with none, every route table of the VPC would count as owned. "
            "Nothing was changed."
        )
    client = module.client("ec2", retry_decorator=jittered_backoff())
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    module.exit_json(**ensure(module, client))


if __name__ == "__main__":
    main()
