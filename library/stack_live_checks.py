#!/usr/bin/python
"""Read-only checks of a stack's inputs against the account and the live stack, before any change."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_live_checks
short_description: Refuse inputs the account does not offer and changes a live stack cannot take
description:
  - Makes only read calls. Fails with one line per variable when a value names something the account
    or region does not have (RDS instance class or engine version, ACM certificate, KMS key, ELB
    security policy), when a bucket name belongs to someone else, or when a change to a deployed stack
    is one AWS can only make by replacing a resource (VPC or subnet ranges, fewer AZs, engine downgrade
    or major upgrade, smaller storage, database name, Cloud Map namespace, Amazon MQ deployment mode,
    a renamed bucket) or would reach into the same stack name in another region (IAM names are global).
  - With I(mode=teardown) it checks only what a teardown could harm and returns which IAM roles and
    buckets the teardown may delete.
  - Supports check mode (it never changes anything).
options:
  stack_name: {description: The stack name., type: str, required: true}
  mode: {description: What the run is about to do., type: str, choices: [deploy, teardown], default: deploy}
  iam_roles: {description: Names of the stack's IAM roles (global names)., type: list, elements: str, default: []}
  network:
    description: vpc_name, vpc_cidr, az_count, public_cidrs, private_cidrs (deploy only).
    type: dict
  database:
    description:
      - identifier, engine_version, instance_class, allocated_storage, name (deploy); identifier and
        skip_final_snapshot (teardown, which refuses a database with deletion protection on).
    type: dict
  namespace: {description: The Cloud Map namespace name (deploy only)., type: str}
  buckets:
    description: Variable name -> bucket name, for the stack's buckets.
    type: dict
    default: {}
  deletable_buckets:
    description: With I(mode=teardown), variable name -> allowed key prefixes of the buckets the teardown deletes.
    type: dict
    default: {}
  bucket_policy:
    description: role, policy and variable -> statement Sid of the task role policy that names the deployed buckets.
    type: dict
  certificate_arn: {description: ACM certificate of the HTTPS listener; empty for none., type: str, default: ""}
  ssl_policy: {description: ELB security policy of the HTTPS listener., type: str, default: ""}
  domain:
    description:
      - name and hosted_zone_id (empty to find it) of the UI's DNS name. The certificate must cover the name
        (deploy); the zone must be a public zone of the name or a parent; without an ID the longest such zone is
        found (C(ListHostedZonesByName)) and returned as C(hosted_zone_id).
    type: dict
  kms_key_id: {description: KMS key of the secrets; empty for the default key., type: str, default: ""}
  amazonmq:
    description: name, deployment_mode, engine_version of the Amazon MQ broker when it is the broker.
    type: dict
  images:
    description:
      - Variable name -> image reference (deploy only). A reference to this region's ECR with both a tag and a
        digest (C(<registry>/<repository>:<tag>@sha256:...)) is refused unless the repository's image with that
        tag has that digest (one C(DescribeImages) each; other references cost nothing).
    type: dict
    default: {}
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

EXAMPLES = r"""
- name: Refuse changes the live stack cannot take
  stack_live_checks:
    stack_name: airflow
    iam_roles: [airflow-ecs-execution]
    network: {vpc_name: airflow-vpc, vpc_cidr: 10.40.0.0/16, az_count: 2, public_cidrs: [], private_cidrs: []}
"""

RETURN = r"""
problems:
  description: One line per refused variable (the module fails when there are any).
  type: list
  returned: always
iam_roles_elsewhere:
  description: IAM roles of the same stack name that belong to another region's stack.
  type: list
  returned: always
iam_roles_missing:
  description: The IAM roles of I(iam_roles) that do not exist (a role only deleted in this run need not be looked up).
  type: list
  returned: always
deletable_buckets:
  description: With mode=teardown, the buckets the teardown may empty and delete.
  type: list
  returned: always
kms_key_arn:
  description: The ARN of the secrets' KMS key (kms_key_id resolved); empty without one.
  type: str
  returned: always
database:
  description:
    - With I(mode=deploy) and I(database), what the database role asks RDS for.
    - C(engine_version) is the live version when the wanted one is its major or the same version (RDS upgrades
      minors itself, so a major-only pin never asks for a downgrade), else the wanted version (a minor upgrade).
    - C(password_version) is the secret version the live master password was set from (the instance's
      C(airflow-ecs:password-version) tag); empty when the instance does not exist or was never tagged.
  type: dict
  returned: always
  sample: {exists: true, engine_version: "17.6", password_version: "a1b2c3d4-..."}
availability_zones:
  description: The region's available AZ names, sorted, when the network check read them (the stack's VPC exists).
  type: list
  returned: when the stack's VPC exists
"""

import contextlib
import re
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.tag_index import bucket_arn, indexed_tags
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

STACK_TAG = "airflow-ecs:stack"
PASSWORD_VERSION_TAG = "airflow-ecs:password-version"
REGION_TAG = "airflow-ecs:region"
# An ECR image reference naming both a tag and a digest.
ECR_TAG_AND_DIGEST = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<repository>[^:@]+)"
    r":(?P<tag>[^@]+)@(?P<digest>sha256:[a-f0-9]{64})$"
)
ARN_REGION = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]+):")


def error_code(err: Exception) -> str:
    return err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(version).split(".") if part.isdigit())


class Checks:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self.region = module.region
        self.stack = self.params["stack_name"]
        self.problems: list[str] = []
        self.iam_roles_elsewhere: list[str] = []
        self.iam_roles_missing: list[str] = []
        self.deletable_buckets: list[str] = []
        self.kms_key_arn = ""
        self.hosted_zone_id = ""
        self.database_plan: dict[str, Any] = {}
        self.availability_zones: list[str] | None = None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.module.client(service, retry_decorator=jittered_backoff())
        return self._clients[service]

    def refuse(self, variable: str, text: str) -> None:
        self.problems.append(f"{variable}: {text}")

    # --- IAM: names are global, so a stack name lives in one region

    def iam(self) -> None:
        iam = self.client("iam")
        for name in self.params["iam_roles"]:
            try:
                role = iam.get_role(RoleName=name, aws_retry=True)["Role"]
            except ClientError as err:
                if error_code(err) == "NoSuchEntity":
                    self.iam_roles_missing.append(name)
                    continue
                raise
            tags = {t["Key"]: t["Value"] for t in role.get("Tags", [])}  # GetRole answers them
            if tags.get(STACK_TAG) != self.stack:
                self.iam_roles_elsewhere.append(name)  # a teardown leaves a role it does not own alone
                if self.params["mode"] == "deploy":
                    self.refuse(
                        "stack_name",
                        f"the IAM role {name} exists and does not belong to stack {self.stack!r} (tag {STACK_TAG} "
                        f"is {tags.get(STACK_TAG)!r}); IAM names are global per account: choose another stack_name",
                    )
                continue
            home = tags.get(REGION_TAG) or self.role_region(name)
            if home and home != self.region:
                self.iam_roles_elsewhere.append(name)
                if self.params["mode"] == "deploy":
                    self.refuse(
                        "aws_region",
                        f"stack {self.stack!r} already runs in {home} (its IAM role {role['RoleName']} says so, and "
                        f"IAM names are global); a stack name lives in one region: deploy to {home}, or give the "
                        f"stack in {self.region} another stack_name",
                    )
                    return

    def role_region(self, name: str) -> str | None:
        """The region a role's inline policies name (roles made before they carried the region tag)."""
        iam = self.client("iam")
        for policy in iam.list_role_policies(RoleName=name, aws_retry=True)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy, aws_retry=True)["PolicyDocument"]
            found = ARN_REGION.search(str(document))
            if found:
                return found.group(1)
        return None

    # --- network: a VPC's and a subnet's range never change; the stack does not remove AZs

    def network(self, wanted: dict) -> None:
        ec2 = self.client("ec2")
        vpcs = ec2.describe_vpcs(
            Filters=[
                {"Name": "tag:Name", "Values": [wanted["vpc_name"]]},
                {"Name": f"tag:{STACK_TAG}", "Values": [self.stack]},
            ],
            aws_retry=True,
        )["Vpcs"]
        if not vpcs:
            return
        vpc = vpcs[0]
        if vpc["CidrBlock"] != wanted["vpc_cidr"]:
            self.refuse(
                "network_vpc_cidr",
                f"got {wanted['vpc_cidr']!r}, but the stack's VPC {vpc['VpcId']} has {vpc['CidrBlock']}; a VPC's range "
                "cannot change (a new VPC would strand the database and the services): keep "
                f"{vpc['CidrBlock']}, or deploy a new stack under another stack_name and move the data",
            )
            return
        zones = ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ],
            aws_retry=True,
        )["AvailabilityZones"]
        self.availability_zones = sorted(z["ZoneName"] for z in zones)  # the network role takes them from here
        azs = self.availability_zones[: int(wanted["az_count"])]
        desired = {}
        for tier in ("public", "private"):
            desired.update({(tier, az): cidr for az, cidr in zip(azs, wanted[f"{tier}_cidrs"], strict=False)})
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}], aws_retry=True)[
            "Subnets"
        ]
        for subnet in sorted(subnets, key=lambda s: (s["AvailabilityZone"], s["CidrBlock"])):
            tier = {t["Key"]: t["Value"] for t in subnet.get("Tags", [])}.get("airflow-ecs:tier")
            if tier not in ("public", "private"):
                continue
            key = (tier, subnet["AvailabilityZone"])
            if key not in desired:
                self.refuse(
                    "network_az_count",
                    f"got {wanted['az_count']}, but the stack runs in {subnet['AvailabilityZone']} too ({tier} subnet "
                    f"{subnet['SubnetId']}); the stack does not remove AZs (the database, NAT gateway and tasks there "
                    "would be cut off): keep network_az_count at least at the AZs in use",
                )
                return
            if desired[key] != subnet["CidrBlock"]:
                self.refuse(
                    f"network_{tier}_subnet_cidrs",
                    f"the {tier} subnet {subnet['SubnetId']} in {key[1]} has {subnet['CidrBlock']} and would get "
                    f"{desired[key]}; a subnet's range cannot change while tasks and the database use it: keep it",
                )
                return

    # --- database: the region's offer, and what RDS cannot change in place

    def database(self, wanted: dict) -> None:
        rds = self.client("rds")
        version, instance_class = str(wanted["engine_version"]), wanted["instance_class"]
        want = version_tuple(version)
        paginator = rds.get_paginator("describe_orderable_db_instance_options")
        offered = {
            option["EngineVersion"]
            for page in paginator.paginate(
                Engine="postgres", DBInstanceClass=instance_class, PaginationConfig={"PageSize": 1000}
            )
            for option in page["OrderableDBInstanceOptions"]
            if option["DBInstanceClass"] == instance_class
        }
        if not offered:
            self.refuse(
                "database_instance_class",
                f"got {instance_class!r}, which RDS for PostgreSQL does not offer in {self.region}",
            )
        elif not any(v == version or v.startswith(version + ".") for v in offered):
            majors = sorted(offered, key=version_tuple)
            self.refuse(
                "database_engine_version",
                f"got {version!r}, which RDS does not offer for {instance_class} in {self.region}; offered: "
                f"{', '.join(majors[-8:])}",
            )
        self.database_plan = {"exists": False, "engine_version": version, "password_version": ""}
        instance = self.db_instance(wanted["identifier"])
        if instance is None:
            return
        current = instance["EngineVersion"]
        tags = {tag["Key"]: tag["Value"] for tag in instance.get("TagList", [])}
        self.database_plan = {
            "exists": True,
            # "17" (or "17.6") against a live 17.6 asks for nothing; "17.7" asks for a minor upgrade.
            "engine_version": current if version_tuple(current)[: len(want)] == want else version,
            "password_version": tags.get(PASSWORD_VERSION_TAG, ""),
        }
        have = version_tuple(current)
        if want[0] < have[0] or (len(want) > 1 and want[0] == have[0] and want < have):
            self.refuse(
                "database_engine_version",
                f"got {version!r}, but the database runs {current}; RDS cannot downgrade an engine: set {current!r} "
                f"(or the major {str(have[0])!r})",
            )
        elif want[0] > have[0]:
            self.refuse(
                "database_engine_version",
                f"got {version!r}, but the database runs {current}; a major upgrade is not done by a deploy "
                f"(it needs a "
                "snapshot, a new parameter group and downtime): upgrade it with RDS first, then set the new version",
            )
        if int(wanted["allocated_storage"]) < instance["AllocatedStorage"]:
            self.refuse(
                "database_allocated_storage",
                f"got {wanted['allocated_storage']}, but the database has {instance['AllocatedStorage']} "
                f"GiB; RDS cannot "
                f"shrink storage: set at least {instance['AllocatedStorage']}",
            )
        if instance.get("DBName") and instance["DBName"] != wanted["name"]:
            self.refuse(
                "database_name",
                f"got {wanted['name']!r}, but the database was created as {instance['DBName']!r} and RDS sets the name "
                "only at creation: keep it",
            )

    def db_instance(self, identifier: str) -> dict | None:
        try:
            return self.client("rds").describe_db_instances(DBInstanceIdentifier=identifier, aws_retry=True)[
                "DBInstances"
            ][0]
        except ClientError as err:
            if error_code(err) == "DBInstanceNotFound":
                return None
            raise

    def protected_database(self, wanted: dict) -> None:
        """A teardown would remove everything else and then stop at a protected database: refuse it first."""
        instance = self.db_instance(wanted["identifier"])
        if instance and instance.get("DeletionProtection"):
            snapshot = "without a final snapshot" if wanted.get("skip_final_snapshot") else "after a final snapshot"
            self.refuse(
                "database_deletion_protection",
                f"the database {wanted['identifier']} has deletion protection on, so the teardown would stop there "
                "with the rest of the stack gone; nothing was deleted. To tear the stack down, set "
                "database_deletion_protection: false and deploy (site.yml), then run the teardown, "
                f"which deletes the database {snapshot} (database_skip_final_snapshot)",
            )

    # --- Cloud Map: the namespace name is fixed

    def namespace(self, wanted: str) -> None:
        sd = self.client("servicediscovery")
        for page in sd.get_paginator("list_namespaces").paginate():
            for namespace in page["Namespaces"]:
                if namespace["Name"] == wanted:
                    return
                tags = sd.list_tags_for_resource(ResourceARN=namespace["Arn"], aws_retry=True)["Tags"]
                if {"Key": STACK_TAG, "Value": self.stack} in tags:
                    self.refuse(
                        "service_discovery_namespace",
                        f"got {wanted!r}, but the stack's services are registered in {namespace['Name']!r}; a "
                        f"namespace "
                        f"cannot be renamed and every service, the broker URL and the secrets name it: keep it",
                    )
                    return

    # --- buckets: globally named, hold the data

    def bucket_tags(self, name: str) -> dict[str, str] | None:
        """The bucket's tags; None when it does not exist; raises PermissionError when another account owns it."""
        try:
            tag_set = self.client("s3").get_bucket_tagging(Bucket=name, aws_retry=True)["TagSet"]
        except ClientError as err:
            if error_code(err) in ("404", "NoSuchBucket", "NotFound"):
                return None
            if error_code(err) in ("403", "AccessDenied"):
                raise PermissionError(name) from err
            if error_code(err) == "NoSuchTagSet":
                return {}
            raise
        return {t["Key"]: t["Value"] for t in tag_set}

    def deployed_buckets(self) -> dict[str, str]:
        """Variable -> bucket name, as the stack's task role policy names them (empty before the first deploy)."""
        where = self.params["bucket_policy"] or {}
        if not where:
            return {}
        try:
            document = self.client("iam").get_role_policy(
                RoleName=where["role"], PolicyName=where["policy"], aws_retry=True
            )["PolicyDocument"]
        except ClientError as err:
            if error_code(err) == "NoSuchEntity":
                return {}
            raise
        found = {}
        for statement in document.get("Statement", []):
            variable = where["sids"].get(statement.get("Sid"))
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if variable and resources:
                found[variable] = re.sub(r"^arn:[a-z-]+:s3:::", "", resources[0]).split("/")[0]
        return found

    def owned_by_index(self) -> set[str]:
        """The buckets the tagging index lists with this stack's tag (one call for all; deploy mode only).

        The index can lag a change by minutes; it only spares the GetBucketTagging of a bucket it shows as
        the stack's, and anything else is read from the bucket itself."""
        if self.params["mode"] != "deploy" or not self.params["buckets"]:
            return set()
        arns = {bucket_arn(self.module, name): name for name in self.params["buckets"].values()}
        return {
            arns[arn]
            for arn, tags in indexed_tags(self.module, list(arns)).items()
            if tags.get(STACK_TAG) == self.stack
        }

    # --- images: a reference's tag and digest must name the same image

    def images(self, references: dict) -> None:
        for variable, reference in references.items():
            found = ECR_TAG_AND_DIGEST.match(reference or "")
            if not found or found["region"] != self.region:
                continue
            try:
                details = self.client("ecr").describe_images(
                    registryId=found["account"],
                    repositoryName=found["repository"],
                    imageIds=[{"imageTag": found["tag"]}],
                    aws_retry=True,
                )["imageDetails"]
            except ClientError as err:
                if error_code(err) not in ("ImageNotFoundException", "RepositoryNotFoundException"):
                    raise
                self.refuse(variable, f"{reference}: the repository {found['repository']} has no image tagged "
                            f"{found['tag']!r}; name the image by its digest alone, or by a tag it has")  # fmt: skip
                continue
            digest = details[0]["imageDigest"] if details else ""
            if digest != found["digest"]:
                self.refuse(variable, f"{reference}: the tag {found['tag']!r} names the image {digest}, not "
                            f"{found['digest']}; give the tag's digest, or the digest alone")  # fmt: skip

    def buckets(self) -> None:
        deployed = self.deployed_buckets() if self.params["mode"] == "deploy" else {}
        owned = self.owned_by_index()
        for variable, name in self.params["buckets"].items():
            if deployed.get(variable) not in (None, name):
                self.refuse(
                    variable,
                    f"got {name!r}, but the stack's bucket is {deployed[variable]!r}; renaming would leave it (and its "
                    f"objects) outside the stack: keep {deployed[variable]!r}, or copy the objects and set it "
                    f"on a new stack",
                )
                continue
            if name in owned:
                continue  # the stack's, and a deploy checks nothing else of it
            try:
                tags = self.bucket_tags(name)
            except PermissionError:
                self.refuse(
                    variable,
                    f"the bucket {name!r} belongs to another AWS account (bucket names are global): choose "
                    f"another name",
                )
                continue
            if tags is None:
                continue
            # A deploy killed between CreateBucket and PutBucketTagging leaves the stack's bucket untagged:
            # an untagged bucket that holds nothing is taken as the stack's (nothing in it can be lost).
            orphan = STACK_TAG not in tags and not self.foreign_keys(name, [])
            if tags.get(STACK_TAG) != self.stack and not orphan:
                if self.params["mode"] == "deploy":
                    self.refuse(
                        variable,
                        f"the bucket {name!r} exists and does not belong to stack {self.stack!r} (tag {STACK_TAG} is "
                        f"{tags.get(STACK_TAG)!r}); the stack never adopts a bucket it did not create: choose "
                        f"another name",
                    )
                continue
            prefixes = self.params["deletable_buckets"].get(variable)
            if self.params["mode"] == "teardown" and prefixes is not None:
                foreign = self.foreign_keys(name, prefixes)
                if foreign:
                    self.refuse(
                        variable,
                        f"the bucket {name!r} holds objects the stack did not write (such as {foreign[0]!r}); the "
                        "teardown would delete them: move them elsewhere first, nothing was removed",
                    )
                else:
                    self.deletable_buckets.append(name)

    def foreign_keys(self, name: str, prefixes: list[str]) -> list[str]:
        """Up to a few keys (of any version) outside `prefixes`; with no prefixes, any key at all."""
        paginator = self.client("s3").get_paginator("list_object_versions")
        foreign = []
        for page in paginator.paginate(Bucket=name):
            for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if not entry["Key"].startswith(tuple(prefixes)):
                    foreign.append(entry["Key"])
            if len(foreign) >= 3:
                break
        return foreign

    # --- things the region must have

    def certificate(self, arn: str, ssl_policy: str) -> None:
        try:
            certificate = self.client("acm").describe_certificate(CertificateArn=arn, aws_retry=True)["Certificate"]
        except ClientError as err:
            if error_code(err) in ("ResourceNotFoundException", "ValidationException", "InvalidArnException"):
                self.refuse("load_balancer_certificate_arn", f"no ACM certificate {arn} exists in {self.region}")
                return
            raise
        if certificate.get("Status") != "ISSUED":
            self.refuse(
                "load_balancer_certificate_arn",
                f"the certificate {arn} is {certificate.get('Status')}, not ISSUED: an HTTPS listener needs "
                f"an issued one",
            )
        try:
            policies = self.client("elbv2").describe_ssl_policies(Names=[ssl_policy], aws_retry=True)["SslPolicies"]
        except ClientError as err:
            if error_code(err) != "SSLPolicyNotFound":
                raise
            policies = []
        if not policies:
            self.refuse("load_balancer_ssl_policy", f"got {ssl_policy!r}, which Elastic Load Balancing does not offer")

    def certificate_covers(self, arn: str, name: str) -> None:
        """ACM's rule: a name of the certificate (its domain or a SAN) is the name, or `*.` + its parent."""
        try:
            certificate = self.client("acm").describe_certificate(CertificateArn=arn, aws_retry=True)["Certificate"]
        except ClientError as err:
            if error_code(err) in ("ResourceNotFoundException", "ValidationException", "InvalidArnException"):
                return  # refused by certificate()
            raise
        names = {
            n.lower().rstrip(".")
            for n in [certificate.get("DomainName", ""), *certificate.get("SubjectAlternativeNames", [])]
        }
        parent = name.split(".", 1)[1] if "." in name else ""
        if name not in names and f"*.{parent}" not in names:
            self.refuse(
                "load_balancer_domain_name",
                f"got {name!r}, which the certificate {arn} does not cover (it names {', '.join(sorted(names))}; a "
                f"wildcard covers one level only): request or import a certificate for {name} or *.{parent}",
            )

    def hosted_zone(self, name: str, zone_id: str) -> None:
        """The given public zone must hold the name; without one, the longest public zone that does is found."""
        route53 = self.client("route53")
        if zone_id:
            try:
                zone = route53.get_hosted_zone(Id=zone_id, aws_retry=True)["HostedZone"]
            except ClientError as err:
                if error_code(err) not in ("NoSuchHostedZone", "InvalidInput"):
                    raise
                self.refuse("load_balancer_hosted_zone_id", f"no hosted zone {zone_id!r} exists in this account")
                return
            zone_name = zone["Name"].lower().rstrip(".")
            if name != zone_name and not name.endswith(f".{zone_name}"):
                self.refuse(
                    "load_balancer_hosted_zone_id",
                    f"got {zone_id!r}, the zone {zone_name}, which is not load_balancer_domain_name {name!r} nor a "
                    "parent of it: give the zone of the name or of a parent domain, or leave it empty to find it",
                )
            elif (zone.get("Config") or {}).get("PrivateZone"):
                self.refuse(
                    "load_balancer_hosted_zone_id",
                    f"got {zone_id!r}, a private zone: the internet-facing ALB's name needs a public hosted zone",
                )
            else:
                self.hosted_zone_id = zone_id
            return
        labels = name.split(".")
        for start in range(len(labels) - 1):  # the name itself first, then each parent but the top-level domain
            candidate = ".".join(labels[start:])
            zones = route53.list_hosted_zones_by_name(DNSName=candidate, MaxItems="10", aws_retry=True)["HostedZones"]
            public = [
                z
                for z in zones
                if z["Name"].lower().rstrip(".") == candidate and not (z.get("Config") or {}).get("PrivateZone")
            ]
            if len(public) > 1:
                self.refuse(
                    "load_balancer_hosted_zone_id",
                    f"is empty and {len(public)} public hosted zones are named {candidate} "
                    f"({', '.join(z['Id'].rsplit('/', 1)[-1] for z in public)}): name the one to use",
                )
                return
            if public:
                self.hosted_zone_id = public[0]["Id"].rsplit("/", 1)[-1]
                return
        self.refuse(
            "load_balancer_domain_name",
            f"got {name!r}, but no public hosted zone of this account holds it or a parent domain: create one, or "
            "set load_balancer_hosted_zone_id",
        )

    def kms_key(self, key_id: str) -> None:
        try:
            key = self.client("kms").describe_key(KeyId=key_id, aws_retry=True)["KeyMetadata"]
        except ClientError as err:
            if error_code(err) in ("NotFoundException", "InvalidArnException"):
                self.refuse("secrets_kms_key_id", f"no KMS key {key_id!r} exists in {self.region}")
                return
            raise
        if key.get("KeyState") != "Enabled":
            self.refuse("secrets_kms_key_id", f"the KMS key {key_id!r} is {key.get('KeyState')}, not Enabled")
        self.kms_key_arn = key["Arn"]

    def amazonmq(self, wanted: dict) -> None:
        mq = self.client("mq")
        summaries = [b for page in mq.get_paginator("list_brokers").paginate() for b in page["BrokerSummaries"]]
        match = [b for b in summaries if b.get("BrokerName") == wanted["name"]]
        if not match:
            return
        broker = mq.describe_broker(BrokerId=match[0]["BrokerId"], aws_retry=True)
        if broker["DeploymentMode"] != wanted["deployment_mode"]:
            self.refuse(
                "messaging_amazonmq_deployment_mode",
                f"got {wanted['deployment_mode']!r}, but the broker runs as {broker['DeploymentMode']}; Amazon MQ sets "
                "the deployment mode at creation: keep it",
            )
        if version_tuple(wanted["engine_version"]) < version_tuple(broker["EngineVersion"]):
            self.refuse(
                "messaging_amazonmq_engine_version",
                f"got {wanted['engine_version']!r}, but the broker runs {broker['EngineVersion']}; Amazon MQ cannot "
                f"downgrade: set {broker['EngineVersion']!r}",
            )

    def run(self) -> None:
        params = self.params
        self.iam()
        if params["mode"] == "deploy":
            if params["network"]:
                self.network(params["network"])
            if params["database"]:
                self.database(params["database"])
            if params["namespace"]:
                self.namespace(params["namespace"])
            if params["certificate_arn"]:
                self.certificate(params["certificate_arn"], params["ssl_policy"])
                if (params["domain"] or {}).get("name"):
                    self.certificate_covers(params["certificate_arn"], params["domain"]["name"])
            if params["kms_key_id"]:
                self.kms_key(params["kms_key_id"])
            if params["amazonmq"]:
                self.amazonmq(params["amazonmq"])
            self.images(params["images"])
        elif params["database"]:
            self.protected_database(params["database"])
        if (params["domain"] or {}).get("name"):
            self.hosted_zone(params["domain"]["name"], params["domain"].get("hosted_zone_id") or "")
        self.buckets()


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "stack_name": {"type": "str", "required": True},
            "mode": {"type": "str", "choices": ["deploy", "teardown"], "default": "deploy"},
            "iam_roles": {"type": "list", "elements": "str", "default": []},
            "network": {"type": "dict"},
            "database": {"type": "dict"},
            "namespace": {"type": "str"},
            "buckets": {"type": "dict", "default": {}},
            "deletable_buckets": {"type": "dict", "default": {}},
            "bucket_policy": {"type": "dict"},
            "certificate_arn": {"type": "str", "default": ""},
            "ssl_policy": {"type": "str", "default": ""},
            "domain": {"type": "dict"},
            "kms_key_id": {"type": "str", "default": ""},
            "amazonmq": {"type": "dict"},
            "images": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    checks = Checks(module)
    try:
        checks.run()
    except (BotoCoreError, ClientError) as err:
        module.fail_json_aws(err, msg="Could not read the stack's current state")
    result = {
        "changed": False,
        "problems": checks.problems,
        "iam_roles_elsewhere": checks.iam_roles_elsewhere,
        "iam_roles_missing": checks.iam_roles_missing,
        "deletable_buckets": checks.deletable_buckets,
        "kms_key_arn": checks.kms_key_arn,
        "hosted_zone_id": checks.hosted_zone_id,
        "database": checks.database_plan,
    }
    if checks.availability_zones is not None:
        result["availability_zones"] = checks.availability_zones
    if checks.problems:
        module.fail_json(msg="\n".join(["Refused before any change:", *checks.problems]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
