"""Security audit of a deployed stack, through the AWS API only.

Each audit takes the boto3 clients it needs and the stack name, and returns a list of offender
descriptions, each naming the resource at fault (empty = the check passes). The stack's resources
are found the way teardown finds them: by the `airflow-ecs:stack` tag and by the names derived from
the stack name, never from what the playbook printed. No description ever contains a secret value.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator

STACK_TAG = "airflow-ecs:stack"
BUCKET_PURPOSE_TAG = "airflow-ecs:bucket"
MIN_BACKUP_RETENTION_DAYS = 7
# IAM: services whose `*` actions or `*` resources our own policies must never grant.
SCOPED_SERVICES = ("s3", "secretsmanager", "logs")
AWS_MANAGED_POLICY_PREFIX = "arn:aws:iam::aws:policy/"


# --- helpers
def _pages(client, operation: str, key: str, **kwargs) -> Iterator[dict]:
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, [])
    else:
        yield from getattr(client, operation)(**kwargs).get(key, [])


def _tags(resource: dict, key: str = "Tags") -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get(key) or []}


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _stack_vpc_ids(ec2, stack: str) -> list[str]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": f"tag:{STACK_TAG}", "Values": [stack]}])["Vpcs"]
    return [v["VpcId"] for v in vpcs]


def _stack_security_groups(ec2, stack: str) -> list[dict]:
    """Every security group in the stack's VPC(s), tagged or not (one added by hand counts too)."""
    vpc_ids = _stack_vpc_ids(ec2, stack)
    if not vpc_ids:
        return []
    return list(
        _pages(ec2, "describe_security_groups", "SecurityGroups", Filters=[{"Name": "vpc-id", "Values": vpc_ids}])
    )


def _sg_label(group: dict) -> str:
    return f"security group {group['GroupName']} ({group['GroupId']})"


def _port_label(rule: dict) -> str:
    if rule["IpProtocol"] == "-1":
        return "all traffic"
    low, high = rule.get("FromPort"), rule.get("ToPort")
    return f"{rule['IpProtocol']}/{low}" if low == high else f"{rule['IpProtocol']}/{low}-{high}"


def _cidr_sources(rule: dict) -> list[str]:
    return (
        [r["CidrIp"] for r in rule.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])]
        + [p["PrefixListId"] for p in rule.get("PrefixListIds", [])]
    )


def _vpc_networks(ec2, vpc_ids: list[str]) -> list:
    if not vpc_ids:
        return []
    networks = []
    for vpc in ec2.describe_vpcs(VpcIds=vpc_ids)["Vpcs"]:
        networks += [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])] or [vpc["CidrBlock"]]
        networks += [a["Ipv6CidrBlock"] for a in vpc.get("Ipv6CidrBlockAssociationSet", []) if a.get("Ipv6CidrBlock")]
    return [ipaddress.ip_network(n, strict=False) for n in networks]


def _outside(source: str, vpc_networks: list) -> bool:
    """A CIDR not inside the VPC's own ranges (0.0.0.0/0, ::/0, an office range...); a prefix list counts too."""
    try:
        network = ipaddress.ip_network(source, strict=False)
    except ValueError:
        return True
    return not any(network.version == v.version and network.subnet_of(v) for v in vpc_networks)


def _stack_load_balancers(elbv2, vpc_ids: list[str]) -> list[dict]:
    return [lb for lb in _pages(elbv2, "describe_load_balancers", "LoadBalancers") if lb.get("VpcId") in vpc_ids]


def _stack_task_definition_arns(ecs, stack: str) -> list[str]:
    """Every ACTIVE revision of the stack's families (`<stack>-*`), not only the revisions services run.

    ListTaskDefinitions takes an exact family (despite the parameter's name `familyPrefix`), so the
    families are listed first.
    """
    families = _pages(ecs, "list_task_definition_families", "families", familyPrefix=f"{stack}-", status="ACTIVE")
    return [
        arn
        for family in families
        for arn in _pages(ecs, "list_task_definitions", "taskDefinitionArns", familyPrefix=family, status="ACTIVE")
    ]


def _stack_services(ecs, stack: str) -> list[dict]:
    arns = list(_pages(ecs, "list_services", "serviceArns", cluster=stack))
    services = []
    for start in range(0, len(arns), 10):
        services += ecs.describe_services(cluster=stack, services=arns[start : start + 10])["services"]
    return [s for s in services if s["status"] != "INACTIVE"]


def _public_subnet_ids(ec2, subnet_ids: Iterable[str]) -> set[str]:
    """Subnets whose route table (explicit association, else the VPC's main table) routes to an internet gateway."""
    subnet_ids = sorted(set(subnet_ids))
    if not subnet_ids:
        return set()
    subnets = ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]
    tables = list(
        _pages(
            ec2,
            "describe_route_tables",
            "RouteTables",
            Filters=[{"Name": "vpc-id", "Values": sorted({s["VpcId"] for s in subnets})}],
        )
    )

    def to_internet(table: dict) -> bool:
        return any(
            route.get("GatewayId", "").startswith("igw-")
            and (route.get("DestinationCidrBlock") == "0.0.0.0/0" or route.get("DestinationIpv6CidrBlock") == "::/0")
            for route in table.get("Routes", [])
        )

    explicit = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}
    main = {t["VpcId"]: t for t in tables if any(a.get("Main") for a in t.get("Associations", []))}
    public = set()
    for subnet in subnets:
        table = explicit.get(subnet["SubnetId"]) or main.get(subnet["VpcId"])
        if table and to_internet(table):
            public.add(subnet["SubnetId"])
    return public


def _non_group_sources(ec2, group_ids: Iterable[str]) -> dict[str, list[str]]:
    """By group id: the ingress rules whose source is a CIDR or prefix list instead of a security group."""
    group_ids = sorted(set(group_ids))
    if not group_ids:
        return {}
    found: dict[str, list[str]] = {}
    for group in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"]:
        found[group["GroupId"]] = [
            f"{_sg_label(group)} admits {source} on {_port_label(rule)}"
            for rule in group["IpPermissions"]
            for source in _cidr_sources(rule)
        ]
    return found


# --- 1. No security group admits the internet (0.0.0.0/0, ::/0, or any range outside the VPC), except the ALB
# on its listener ports.
def ingress_from_outside_the_vpc(ec2, elbv2, stack: str) -> list[str]:
    vpc_ids = _stack_vpc_ids(ec2, stack)
    vpc_networks = _vpc_networks(ec2, vpc_ids)
    listener_ports: dict[str, set[int]] = {}  # security group id -> listener ports of the load balancer(s) it guards
    for lb in _stack_load_balancers(elbv2, vpc_ids):
        listeners = _pages(elbv2, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"])
        ports = {listener["Port"] for listener in listeners}
        for group_id in lb.get("SecurityGroups", []):
            listener_ports.setdefault(group_id, set()).update(ports)
    offenders = []
    for group in _stack_security_groups(ec2, stack):
        allowed_ports = listener_ports.get(group["GroupId"], set())
        for rule in group["IpPermissions"]:
            outside = [c for c in _cidr_sources(rule) if _outside(c, vpc_networks)]
            if not outside:
                continue
            on_listener = (
                rule["IpProtocol"] == "tcp"
                and rule.get("FromPort") is not None
                and all(port in allowed_ports for port in range(rule["FromPort"], rule["ToPort"] + 1))
            )
            if not on_listener:
                offenders.append(f"{_sg_label(group)} admits {', '.join(outside)} on {_port_label(rule)}")
    return offenders


# --- 1b. The task Execution API (/execution/, for the workers through Cloud Map) is refused by every listener
# of the stack's ALBs: the first rule (by priority) matching /execution and /execution/... answers 4xx itself.
EXECUTION_PATHS = ("/execution", "/execution/", "/execution/task-instances/x/run")


def _rule_covers(rule: dict, path: str) -> bool:
    """A rule's conditions hold for every request to `path` (path patterns only; any other condition narrows it)."""
    for condition in rule.get("Conditions") or []:
        if condition.get("Field") != "path-pattern":
            return False
        values = (condition.get("PathPatternConfig") or {}).get("Values") or condition.get("Values") or []
        if not any(fnmatch.fnmatchcase(path, value) for value in values):
            return False
    return True


def execution_api_through_the_alb(elbv2, ec2, stack: str) -> list[str]:
    offenders = []
    for lb in _stack_load_balancers(elbv2, _stack_vpc_ids(ec2, stack)):
        for listener in _pages(elbv2, "describe_listeners", "Listeners", LoadBalancerArn=lb["LoadBalancerArn"]):
            rules = sorted(
                _pages(elbv2, "describe_rules", "Rules", ListenerArn=listener["ListenerArn"]),
                key=lambda r: (r.get("IsDefault", False), int(r["Priority"]) if r["Priority"].isdigit() else 0),
            )
            for path in EXECUTION_PATHS:
                first = next((rule for rule in rules if _rule_covers(rule, path)), {})
                action = (first.get("Actions") or [{}])[-1]
                status = (action.get("FixedResponseConfig") or {}).get("StatusCode", "")
                if not (action.get("Type") == "fixed-response" and status.startswith("4")):
                    offenders.append(
                        f"load balancer {lb['LoadBalancerName']} listener {listener['Port']} does not refuse {path} "
                        f"(its first matching rule {first.get('Priority')} does {action.get('Type')})"
                    )
                    break
    return offenders


# --- 2. Broker (AMQP and management), Flower, the api-server (every ECS service) and the database are private.
def internet_reachable_internals(ec2, ecs, rds, stack: str) -> list[str]:
    """No public IP, no public subnet, and only security groups (never CIDRs) as sources of their groups.

    Every ECS service of the stack is audited (RabbitMQ with its management port, Flower, the api-server
    and the other Airflow nodes), and the database. The api-server is reachable through the ALB only: its
    own group admits the ALB's group, not a CIDR.
    """
    services = _stack_services(ecs, stack)
    networks = {s["serviceName"]: s.get("networkConfiguration", {}).get("awsvpcConfiguration") for s in services}
    databases = _stack_db_instances(rds, stack)
    db_subnets = {
        db["DBInstanceIdentifier"]: [s["SubnetIdentifier"] for s in db.get("DBSubnetGroup", {}).get("Subnets", [])]
        for db in databases
    }
    db_groups = {
        db["DBInstanceIdentifier"]: [g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])]
        for db in databases
    }
    service_subnets = [subnet for n in networks.values() if n for subnet in n.get("subnets", [])]
    public = _public_subnet_ids(ec2, service_subnets + [s for subnets in db_subnets.values() for s in subnets])
    service_groups = [group for n in networks.values() if n for group in n.get("securityGroups", [])]
    cidr_rules = _non_group_sources(ec2, service_groups + [g for groups in db_groups.values() for g in groups])
    public_ips = _task_public_ips(ec2, ecs, stack)

    offenders = []
    for name, network in networks.items():
        label = f"ecs service {name}"
        if network is None:
            offenders.append(f"{label}: not in awsvpc mode (no network configuration)")
            continue
        if network.get("assignPublicIp") != "DISABLED":
            offenders.append(f"{label}: assignPublicIp {network.get('assignPublicIp')}")
        offenders += [f"{label}: runs in public subnet {s}" for s in network.get("subnets", []) if s in public]
        offenders += [f"{label}: {rule}" for g in network.get("securityGroups", []) for rule in cidr_rules.get(g, [])]
        offenders += [f"{label}: {problem}" for problem in public_ips.get(name, [])]
    for db in databases:
        identifier = db["DBInstanceIdentifier"]
        label = f"db instance {identifier}"
        if db.get("PubliclyAccessible"):
            offenders.append(f"{label}: publicly accessible")
        offenders += [
            f"{label}: subnet group has public subnet {s}" for s in sorted(db_subnets[identifier]) if s in public
        ]
        offenders += [f"{label}: {rule}" for g in db_groups[identifier] for rule in cidr_rules.get(g, [])]
    return offenders


def _task_public_ips(ec2, ecs, stack: str) -> dict[str, list[str]]:
    """By service name: the running tasks whose network interface has a public IP.

    The emulator starts no tasks for services (only one-off tasks, and creates no ENI in EC2 for them),
    so there this finds nothing to read and assignPublicIp is what proves the point; on AWS it reads
    the real interfaces of the services' tasks.
    """
    task_arns = list(_pages(ecs, "list_tasks", "taskArns", cluster=stack, desiredStatus="RUNNING"))
    service_of_eni = {}
    for start in range(0, len(task_arns), 100):
        for task in ecs.describe_tasks(cluster=stack, tasks=task_arns[start : start + 100])["tasks"]:
            if not task.get("group", "").startswith("service:"):
                continue
            for attachment in task.get("attachments", []):
                details = {d["name"]: d.get("value") for d in attachment.get("details", [])}
                if details.get("networkInterfaceId"):
                    service_of_eni[details["networkInterfaceId"]] = task["group"].removeprefix("service:")
    if not service_of_eni:
        return {}
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": sorted(service_of_eni)}]
    )["NetworkInterfaces"]
    found: dict[str, list[str]] = {}
    for eni in interfaces:
        if eni.get("Association", {}).get("PublicIp"):
            found.setdefault(service_of_eni[eni["NetworkInterfaceId"]], []).append(
                f"task interface {eni['NetworkInterfaceId']} has public IP {eni['Association']['PublicIp']}"
            )
    return found


# --- 3. No credential-like value in a task definition's `environment`: those come through `secrets`.
# Anywhere in a variable's name: ...PASSWORD, ..._SECRET..., ...TOKEN...; as a whole word: KEY, PASS.
CREDENTIAL_PARTS = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|FERNET|CREDENTIAL|APIKEY|PRIVATE_?KEY")
CREDENTIAL_WORDS = {"KEY", "PASS"}
# Airflow options that hold a URL with the password in it (sensitive in Airflow's own config).
CREDENTIAL_NAMES = re.compile(r"SQL_ALCHEMY_CONN$|BROKER_URL$|RESULT_BACKEND$|BASIC_AUTH$")
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")


def _credential_like_name(name: str) -> bool:
    name = name.upper()
    return bool(
        CREDENTIAL_PARTS.search(name)
        or CREDENTIAL_WORDS & set(re.split(r"[^A-Z0-9]+", name))
        or CREDENTIAL_NAMES.search(name)
    )


def _credential_in_json(value) -> bool:
    """A JSON value (an AIRFLOW_CONN_* connection, a config list) with a non-empty credential-named field."""
    if isinstance(value, dict):
        return any(
            (_credential_like_name(str(k)) and isinstance(v, str) and v) or _credential_in_json(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_credential_in_json(v) for v in value)
    return isinstance(value, str) and bool(URL_WITH_PASSWORD.search(value))


def credential_problem(name: str, value: str) -> str | None:
    """Why an environment variable looks like a credential, or None. Never quotes the value."""
    if not value:
        return None
    if _credential_like_name(name):
        return "credential-like name"
    if URL_WITH_PASSWORD.search(value):
        return "URL with a password"
    if value.lstrip().startswith(("{", "[")):
        try:
            if _credential_in_json(json.loads(value)):
                return "JSON with a credential field"
        except ValueError:
            pass
    return None


def plaintext_credentials_in_task_definitions(ecs, stack: str) -> list[str]:
    offenders = []
    for arn in _stack_task_definition_arns(ecs, stack):
        definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        label = f"task definition {definition['family']}:{definition['revision']}"
        for container in definition["containerDefinitions"]:
            for variable in container.get("environment", []):
                problem = credential_problem(variable["name"], variable.get("value", ""))
                if problem:
                    offenders.append(f"{label} container {container['name']}: {variable['name']} ({problem})")
    return offenders


# --- 4. RDS encrypted, private, backed up; S3 public access blocked, encrypted, the DAG bucket versioned.
def _stack_db_instances(rds, stack: str) -> list[dict]:
    return [
        db for db in _pages(rds, "describe_db_instances", "DBInstances") if _tags(db, "TagList").get(STACK_TAG) == stack
    ]


def database_weaknesses(rds, stack: str) -> list[str]:
    offenders = []
    for db in _stack_db_instances(rds, stack):
        label = f"db instance {db['DBInstanceIdentifier']}"
        if not db.get("StorageEncrypted"):
            offenders.append(f"{label}: storage not encrypted")
        if db.get("PubliclyAccessible"):
            offenders.append(f"{label}: publicly accessible")
        if db.get("BackupRetentionPeriod", 0) < MIN_BACKUP_RETENTION_DAYS:
            offenders.append(
                f"{label}: backup retention {db.get('BackupRetentionPeriod', 0)} days (< {MIN_BACKUP_RETENTION_DAYS})"
            )
    return offenders


def _stack_buckets(s3, stack: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for bucket in s3.list_buckets()["Buckets"]:
        try:
            tags = _tags(s3.get_bucket_tagging(Bucket=bucket["Name"]), "TagSet")
        except s3.exceptions.ClientError as exc:
            if exc.response["Error"]["Code"] in ("NoSuchTagSet", "NoSuchBucket"):
                continue
            raise
        if tags.get(STACK_TAG) == stack:
            found.append((bucket["Name"], tags))
    return found


def _error_code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def bucket_weaknesses(s3, stack: str) -> list[str]:
    offenders = []
    for name, tags in _stack_buckets(s3, stack):
        label = f"s3 bucket {name}"
        try:
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
            off = sorted(
                k
                for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
                if not block.get(k)
            )
            if off:
                offenders.append(f"{label}: public access not blocked ({', '.join(off)} off)")
        except s3.exceptions.ClientError as exc:
            if _error_code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            offenders.append(f"{label}: no public access block")
        try:
            rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
            if not any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules):
                offenders.append(f"{label}: no default encryption")
        except s3.exceptions.ClientError as exc:
            if _error_code(exc) != "ServerSideEncryptionConfigurationNotFoundError":
                raise
            offenders.append(f"{label}: no default encryption")
        if not _denies_plain_http(s3, name):
            offenders.append(f"{label}: {NO_TLS_POLICY}")
        if tags.get(BUCKET_PURPOSE_TAG) == "dags":
            status = s3.get_bucket_versioning(Bucket=name).get("Status", "never enabled")
            if status != "Enabled":
                offenders.append(f"{label}: DAG bucket versioning {status}")
    return offenders


NO_TLS_POLICY = "no bucket policy statement denies requests without TLS (aws:SecureTransport false)"


def _denies_plain_http(s3, name: str) -> bool:
    """The bucket policy denies every principal every S3 action on the bucket and its objects without TLS."""
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=name)["Policy"])
    except s3.exceptions.ClientError as exc:
        if _error_code(exc) != "NoSuchBucketPolicy":
            raise
        return False
    arn = f"arn:{_partition(s3)}:s3:::{name}"
    for statement in _as_list(policy.get("Statement")):
        condition = {
            key.lower(): {k.lower(): str(v).lower() for k, v in values.items()}
            for key, values in (statement.get("Condition") or {}).items()
        }
        if (
            statement.get("Effect") == "Deny"
            and statement.get("Principal") in ("*", {"AWS": "*"}, {"AWS": ["*"]})
            and {"s3:*", "*"} & {a.lower() for a in _as_list(statement.get("Action"))}
            and all(_matches_any(_as_list(statement.get("Resource")), r) for r in (arn, f"{arn}/any-object"))
            and condition.get("bool", {}).get("aws:securetransport") == "false"
        ):
            return True
    return False


def _partition(client) -> str:
    return client.meta.partition or "aws"


def _matches_any(patterns: list[str], value: str) -> bool:
    """IAM's wildcards: `*` any run of characters (`/` and `:` included), `?` one character; case-sensitive."""
    return any(fnmatch.fnmatchcase(value, pattern) for pattern in patterns)


# --- 5. IAM: our policies never grant `*` actions or `*` resources for S3, Secrets Manager or CloudWatch Logs.
def _stack_role_names(iam, ecs, stack: str) -> list[str]:
    """Roles tagged with the stack, plus every existing role the stack's task definitions use (an old revision
    may name a role a later deploy deleted)."""
    names, existing = set(), set()
    for role in _pages(iam, "list_roles", "Roles"):
        existing.add(role["RoleName"])
        tags = _tags(role) or _tags(iam.list_role_tags(RoleName=role["RoleName"]))
        if tags.get(STACK_TAG) == stack:
            names.add(role["RoleName"])
    for arn in _stack_task_definition_arns(ecs, stack):
        definition = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        for key in ("taskRoleArn", "executionRoleArn"):
            if definition.get(key) and definition[key].rsplit("/", 1)[-1] in existing:
                names.add(definition[key].rsplit("/", 1)[-1])
    return sorted(names)


def _document(document) -> dict:
    if isinstance(document, str):
        return json.loads(urllib.parse.unquote(document))
    return document


def _unscoped_resource(resource: str) -> bool:
    """`*`, or an ARN whose resource part names nothing but wildcards (`arn:aws:s3:::*`, `...:secret:*`)."""
    if resource == "*":
        return True
    parts = resource.split(":", 5)
    if len(parts) < 6:
        return False
    tokens = [t for t in re.split(r"[:/]", parts[5]) if t and t not in {"secret", "log-group", "log-stream"}]
    return all(set(t) <= {"*", "?"} for t in tokens)


def statement_problems(statement: dict) -> list[str]:
    if statement.get("Effect") != "Allow":
        return []
    problems = []
    actions = _as_list(statement.get("Action"))
    if "NotAction" in statement:
        problems.append("allows NotAction (every action but those listed)")
    scoped_actions = []
    for action in actions:
        service, _, name = action.lower().partition(":")
        if action == "*" or (service == "*" and set(name) <= {"*"}):
            problems.append("grants every action ('*')")
            scoped_actions.append(action)
        elif service in SCOPED_SERVICES:
            scoped_actions.append(action)
            if set(name) <= {"*"}:
                problems.append(f"grants every {service} action ('{action}')")
    if scoped_actions or "NotAction" in statement:
        wide = [r for r in _as_list(statement.get("Resource")) if _unscoped_resource(r)]
        if "NotResource" in statement:
            wide.append("NotResource")
        if wide:
            problems.append(f"grants {', '.join(sorted(set(scoped_actions)) or ['NotAction'])} on {', '.join(wide)}")
    return problems


def _policy_problems(document) -> list[str]:
    problems = []
    for index, statement in enumerate(_as_list(_document(document).get("Statement"))):
        where = f"statement {statement.get('Sid') or index}"
        problems += [f"{where} {problem}" for problem in statement_problems(statement)]
    return problems


def broad_iam_grants(iam, ecs, stack: str) -> list[str]:
    """Inline and attached customer-managed policies of the stack's roles (AWS-managed policies are not ours)."""
    offenders = []
    for role in _stack_role_names(iam, ecs, stack):
        for policy_name in _pages(iam, "list_role_policies", "PolicyNames", RoleName=role):
            document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
            offenders += [f"iam role {role} inline policy {policy_name}: {p}" for p in _policy_problems(document)]
        for attached in _pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role):
            if attached["PolicyArn"].startswith(AWS_MANAGED_POLICY_PREFIX):
                continue
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
            offenders += [
                f"iam role {role} managed policy {attached['PolicyName']}: {p}"
                for p in _policy_problems(version["PolicyVersion"]["Document"])
            ]
    return offenders


# --- 6. No generated secret value in a play's output.
MIN_SECRET_PART = 16  # JSON secrets: only fields this long are secret material (usernames are not)


def _secret_parts(value: str) -> list[str]:
    if value.startswith("{"):
        try:
            fields = json.loads(value)
        except ValueError:
            return [value]
        return [v for v in fields.values() if isinstance(v, str) and len(v) >= MIN_SECRET_PART]
    return [value]


def secret_values_in_output(secretsmanager, stack: str, output: str) -> list[str]:
    """Names of the stack's secrets (`<stack>/*`) a value of which appears in `output`, raw or JSON-escaped."""
    offenders = []
    for secret in _pages(secretsmanager, "list_secrets", "SecretList"):
        if not secret["Name"].startswith(f"{stack}/"):
            continue
        value = secretsmanager.get_secret_value(SecretId=secret["ARN"]).get("SecretString") or ""
        for part in _secret_parts(value):
            if part and (part in output or json.dumps(part)[1:-1] in output):
                offenders.append(f"secret {secret['Name']}")
                break
    return offenders


# --- 7. One task role per component: no task role serves two families, and only the workers write pipeline data.
# The executor's one-off family (<stack>-task) runs DAG code with its own roles; none of them may write either.
DATA_WRITERS = ("worker",)
DATA_WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject")


def _current_task_definitions(ecs, stack: str) -> list[dict]:
    """What runs now: each service's task definition, and the latest revision of every family without a service."""
    services = _stack_services(ecs, stack)
    definitions = {}
    for service in services:
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]
        definitions[definition["family"]] = definition
    families = _pages(ecs, "list_task_definition_families", "families", familyPrefix=f"{stack}-", status="ACTIVE")
    for family in families:
        if family not in definitions:
            definitions[family] = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    return [definitions[family] for family in sorted(definitions)]


def _role_name(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn else None


def _role_documents(iam, role: str) -> list[dict]:
    """Every policy document of the role: inline ones and attached managed ones (AWS-managed included)."""
    documents = [
        _document(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in _pages(iam, "list_role_policies", "PolicyNames", RoleName=role)
    ]
    for attached in _pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role):
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        documents.append(_document(version["PolicyVersion"]["Document"]))
    return documents


def _allows(documents: list[dict], action: str, resource: str) -> bool:
    """Some Allow statement grants `action` on `resource` (conditions aside; NotAction and NotResource count as
    granting: this finds what a role may be able to do, and a Deny elsewhere is not credited)."""
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement:
                actions = not _matches_any([a.lower() for a in _as_list(statement["NotAction"])], action.lower())
            else:
                actions = _matches_any([a.lower() for a in _as_list(statement.get("Action"))], action.lower())
            resources = "NotResource" in statement or _matches_any(_as_list(statement.get("Resource")), resource)
            if actions and resources:
                return True
    return False


def shared_or_broad_task_roles(iam, ecs, s3, stack: str) -> list[str]:
    current = _current_task_definitions(ecs, stack)
    offenders = []
    families_of: dict[str, list[str]] = {}
    for definition in current:
        if role := _role_name(definition.get("taskRoleArn")):
            families_of.setdefault(role, []).append(definition["family"])
    offenders += [
        f"iam role {role} is the task role of {', '.join(families)}"
        for role, families in sorted(families_of.items())
        if len(families) > 1
    ]
    data_buckets = [name for name, tags in _stack_buckets(s3, stack) if tags.get(BUCKET_PURPOSE_TAG) == "data"]
    writers = {f"{stack}-{component}" for component in DATA_WRITERS}
    for role, families in sorted(families_of.items()):
        if set(families) <= writers:
            continue
        documents = _role_documents(iam, role)
        for bucket in data_buckets:
            probe = f"arn:{_partition(iam)}:s3:::{bucket}/audit/any-object"
            granted = [action for action in DATA_WRITE_ACTIONS if _allows(documents, action, probe)]
            if granted:
                owner = f"iam role {role} (task role of {', '.join(families)})"
                offenders.append(f"{owner} may {', '.join(granted)} in data bucket {bucket}")
    return offenders


# --- 8. Each task definition's execution role reads exactly the secrets that definition names.
def _secret_arn(value_from: str) -> str:
    """`arn:...:secret:<name>-<suffix>[:<json-key>:<stage>:<version>]` -> the secret's ARN."""
    return ":".join(value_from.split(":")[:7])


def secrets_beyond_use(iam, ecs, secretsmanager, stack: str) -> list[str]:
    secrets = _pages(secretsmanager, "list_secrets", "SecretList")
    stack_secrets = [s for s in secrets if s["Name"].startswith(f"{stack}/")]
    readers: dict[str, list[dict]] = {}
    for definition in _current_task_definitions(ecs, stack):
        if role := _role_name(definition.get("executionRoleArn")):
            readers.setdefault(role, []).append(definition)
    offenders = []
    for role, definitions in sorted(readers.items()):
        families = ", ".join(d["family"] for d in definitions)
        if len(definitions) > 1:
            offenders.append(f"iam role {role} is the execution role of {families}")
        used = {
            _secret_arn(secret["valueFrom"])
            for definition in definitions
            for container in definition["containerDefinitions"]
            for secret in container.get("secrets", [])
        }
        documents = _role_documents(iam, role)
        for secret in stack_secrets:
            if secret["ARN"] not in used and _allows(documents, "secretsmanager:GetSecretValue", secret["ARN"]):
                owner = f"iam role {role} (execution role of {families})"
                offenders.append(f"{owner} may read secret {secret['Name']}, which it does not use")
    return offenders


# --- 9. Task roles trust ECS tasks of this account only (confused deputy: aws:SourceAccount, aws:SourceArn).
def _task_role_names(iam, ecs, stack: str) -> list[str]:
    """The task roles of what runs now, and the AwsEcsExecutor's (IAM path /<stack>-tasks/, passed at RunTask)."""
    names = {_role_name(d.get("taskRoleArn")) for d in _current_task_definitions(ecs, stack)}
    names |= {r["RoleName"] for r in _pages(iam, "list_roles", "Roles", PathPrefix=f"/{stack}-tasks/")}
    return sorted(name for name in names if name)


def _trust_problem(role: dict) -> str | None:
    account = role["Arn"].split(":")[4]
    ecs_arns = f"arn:{role['Arn'].split(':')[1]}:ecs:*:{account}:*"
    for statement in _as_list(_document(role["AssumeRolePolicyDocument"]).get("Statement")):
        principal = statement.get("Principal")
        services = _as_list(principal.get("Service")) if isinstance(principal, dict) else []
        if statement.get("Effect") != "Allow" or "ecs-tasks.amazonaws.com" not in services:
            continue
        condition = statement.get("Condition") or {}
        source_account = _as_list(condition.get("StringEquals", {}).get("aws:SourceAccount"))
        source_arn = _as_list(condition.get("ArnLike", {}).get("aws:SourceArn")) + _as_list(
            condition.get("ArnEquals", {}).get("aws:SourceArn")
        )
        missing = []
        if source_account != [account]:
            missing.append(f"aws:SourceAccount {account}")
        if not source_arn or not all(fnmatch.fnmatchcase(arn, ecs_arns) for arn in source_arn):
            missing.append(f"aws:SourceArn of {account}'s ECS")
        if missing:
            return f"trusts ecs-tasks.amazonaws.com without {' and '.join(missing)}"
    return None


def task_role_trust_without_source(iam, ecs, stack: str) -> list[str]:
    offenders = []
    for name in _task_role_names(iam, ecs, stack):
        if problem := _trust_problem(iam.get_role(RoleName=name)["Role"]):
            offenders.append(f"iam role {name} {problem}")
    return offenders


# --- 10. No service runs on Fargate Spot alone: an on-demand FARGATE base keeps it up through a Spot shortage.
def spot_only_services(ecs, stack: str) -> list[str]:
    offenders = []
    for service in _stack_services(ecs, stack):
        strategy = service.get("capacityProviderStrategy") or []
        if not strategy:
            continue  # a launch type (FARGATE on the emulator): on-demand
        on_demand = [item for item in strategy if item["capacityProvider"] == "FARGATE"]
        spot = [item for item in strategy if item["capacityProvider"] == "FARGATE_SPOT"]
        if spot and not any(item.get("base", 0) >= 1 and item.get("weight", 0) >= 1 for item in on_demand):
            offenders.append(f"ecs service {service['serviceName']}: on FARGATE_SPOT without an on-demand FARGATE base")
    return offenders
